/**
 * The cost fuzzer's runner: build a family's layer at a size, run the real CLI on it in a
 * child process (`deno run -A src/main.ts validate FILE` or `apply FILE DIR`) under GNU time,
 * and judge how its CPU time and peak RSS grow with the input.
 *
 * CPU time (user + system, every thread) rather than wall time: the machine is shared, and CPU
 * time moves much less with the load. Peak RSS is GNU time's %M (the kernel's maxrss).
 *
 * @example
 * ```ts
 * import { FAMILIES } from "./families.ts";
 * import { measure } from "./run.ts";
 * const m = await measure(FAMILIES[0], 1000, "validate", "/tmp/cost");
 * m.code; // 0 or 65
 * ```
 * @module
 */
import { type CostCommand, type Family, writeLayer } from "./families.ts";

const MAIN = new URL("../../../src/main.ts", import.meta.url).pathname;
const TIME = "/usr/bin/time";

/** One run of one command on one layer. */
export interface Measurement {
  family: string;
  command: CostCommand;
  n: number;
  /** Size of the layer file. */
  inputBytes: number;
  /** Exit status (128 + signal when killed; -1 when the runner killed it at its deadline). */
  code: number;
  /** User + system CPU seconds. */
  cpu: number;
  wall: number;
  rssKiB: number;
  /** Last lines of stderr, for a failure message. */
  stderr: string;
}

/** Run `command` on a layer file already written; `dir` is scratch space for `apply`. */
export async function runCli(
  command: CostCommand,
  file: string,
  dir: string,
  deadlineSeconds = 600,
): Promise<Omit<Measurement, "family" | "n" | "inputBytes">> {
  const target = `${dir}/target`;
  if (command === "apply") await Deno.mkdir(target, { recursive: true });
  const args = ["-f", "%U %S %e %M", Deno.execPath(), "run", "-A", MAIN, command, file];
  if (command === "apply") args.push(target);
  const child = new Deno.Command(TIME, {
    args,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    // GNU time does not pass signals on: kill the program it runs.
    try {
      const kids = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`);
      for (const pid of kids.trim().split(/\s+/).filter(Boolean)) {
        Deno.kill(Number(pid), "SIGKILL");
      }
    } catch { /* gone already */ }
  }, deadlineSeconds * 1000);
  const out = await child.output();
  clearTimeout(timer);
  if (command === "apply") await Deno.remove(target, { recursive: true }).catch(() => {});
  const lines = new TextDecoder().decode(out.stderr).trimEnd().split("\n");
  const [u, s, e, m] = (lines.pop() ?? "").split(" ").map(Number);
  return {
    command,
    code: killed ? -1 : out.code,
    cpu: u + s,
    wall: e,
    rssKiB: m,
    stderr: lines.slice(-4).join("\n"),
  };
}

/** Build family `f` at size `n` in `dir`, run `command` on it, remove the layer. */
export async function measure(
  f: Family,
  n: number,
  command: CostCommand,
  dir: string,
  deadlineSeconds?: number,
): Promise<Measurement> {
  const file = `${dir}/${f.name}-${n}.tar${f.gzip ? ".gz" : ""}`;
  const inputBytes = await writeLayer(f, n, file);
  try {
    const r = await runCli(command, file, dir, deadlineSeconds);
    return { family: f.name, n, inputBytes, ...r };
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** A layer of nothing: the cost of starting the CLI, subtracted before comparing growth. */
export async function baseline(command: CostCommand, dir: string): Promise<Measurement> {
  const empty: Family = {
    name: "empty",
    about: "",
    gzip: true,
    commands: [command],
    test: 1,
    bench: [1],
    *build() {
      yield new Uint8Array(1024);
    },
  };
  let best: Measurement | undefined;
  for (let i = 0; i < 3; i++) {
    const m = await measure(empty, 1, command, dir);
    if (!best || m.cpu < best.cpu) best = m;
  }
  return best!;
}

/** Bounds on growth between a size and a larger one. */
export interface GrowthBudget {
  /** Allowed factor over linear growth of the work above the baseline (noise, GC). */
  slack: number;
  /** Work below this many CPU seconds is noise: the small run counts as at least this. */
  floorSeconds: number;
  /** Peak RSS may grow by at most this much from the small run to the large one. */
  rssGrowthKiB: number;
  /** And never exceed this. */
  rssMaxKiB: number;
}

/**
 * The agent's memory budget for one layer at the default limits (`src/tar/limits.ts`): never
 * past 256 MiB, and growth of a fixed 64 MiB at most whatever the size of the input.
 */
export const DEFAULT_BUDGET: GrowthBudget = {
  slack: 2,
  floorSeconds: 0.1,
  rssGrowthKiB: 64 * 1024,
  rssMaxKiB: 256 * 1024,
};

/**
 * Why the growth from `small` to `large` breaks the budget (empty when it does not). The work
 * above the baseline may grow at most `slack` times faster than the input; an exit status
 * other than 0 or 65 fails on its own.
 */
export function judge(
  small: Measurement,
  large: Measurement,
  base: Measurement,
  budget: GrowthBudget = DEFAULT_BUDGET,
): string[] {
  const problems: string[] = [];
  for (const m of [small, large]) {
    if (m.code !== 0 && m.code !== 65) {
      problems.push(
        `${m.command} n=${m.n} exited ${m.code === -1 ? "(killed at deadline)" : m.code}: ${
          m.stderr.slice(-300)
        }`,
      );
    }
  }
  const inputRatio = Math.max(1, large.inputBytes / small.inputBytes, large.n / small.n);
  const work = (m: Measurement) => Math.max(m.cpu - base.cpu, 0);
  const allowed = Math.max(work(small), budget.floorSeconds) * inputRatio * budget.slack;
  if (work(large) > allowed) {
    problems.push(
      `${large.command}: CPU above startup grew from ${
        work(small).toFixed(2)
      } s (n=${small.n}) to ${
        work(large).toFixed(2)
      } s (n=${large.n}), more than ${budget.slack} x the input's growth (${
        inputRatio.toFixed(1)
      }x)`,
    );
  }
  if (large.rssKiB - small.rssKiB > budget.rssGrowthKiB) {
    problems.push(
      `${large.command}: peak RSS grew from ${mib(small.rssKiB)} (n=${small.n}) to ${
        mib(large.rssKiB)
      } (n=${large.n}), more than ${mib(budget.rssGrowthKiB)}`,
    );
  }
  for (const m of [small, large]) {
    if (m.rssKiB > budget.rssMaxKiB) {
      problems.push(
        `${m.command} n=${m.n}: peak RSS ${mib(m.rssKiB)} exceeds ${mib(budget.rssMaxKiB)}`,
      );
    }
  }
  return problems;
}

/** KiB as "12.3 MiB". */
export function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}
