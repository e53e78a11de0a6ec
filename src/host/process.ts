/**
 * Who this process is, and whether another process still runs: the owner ids that the engine
 * stamps on the runs it drives, and the {@linkcode Liveness} check that reads `/proc`.
 *
 * An owner id is `HOST/BOOT/PID/START`: the hostname, the kernel's boot id, the pid, and the
 * process start time in clock ticks since boot (`/proc/PID/stat` field 22). A pid alone is
 * reused; pid plus start time names one process for the life of one boot, and the boot id
 * tells a rebooted host from a live one. Owners on another host cannot be checked from here
 * (`unknown`): the engine falls back on their lease.
 *
 * @example
 * ```ts
 * import { currentOwner, ProcLiveness } from "./process.ts";
 * const me = currentOwner(); // "web-1/5c1f.../4242/98765"
 * new ProcLiveness().status(me); // "alive"
 * ```
 * @module
 */
import type { Liveness } from "../engine/types.ts";

/** The parts of an owner id. */
export interface OwnerParts {
  host: string;
  boot: string;
  pid: number;
  start: number;
}

/** Format an owner id. */
export function formatOwner(p: OwnerParts): string {
  return `${p.host}/${p.boot}/${p.pid}/${p.start}`;
}

/** Parse an owner id; undefined when it is not one. */
export function parseOwner(owner: string): OwnerParts | undefined {
  const m = /^(.+)\/([0-9a-f-]+)\/(\d+)\/(\d+)$/.exec(owner);
  if (!m) return undefined;
  return { host: m[1], boot: m[2], pid: Number(m[3]), start: Number(m[4]) };
}

/**
 * Parse `/proc/PID/stat` text: the process state letter and start time (field 22). The
 * command name (field 2) may hold spaces and parentheses, so fields are counted from the
 * last ')'.
 */
export function parseStat(text: string): { state: string; start: number } {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new Error("unreadable /proc stat line");
  const fields = text.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const start = Number(fields[19]);
  if (!fields[0] || !Number.isSafeInteger(start)) throw new Error("unreadable /proc stat line");
  return { state: fields[0], start };
}

/** The kernel's boot id (changes at each boot). */
export function bootId(): string {
  return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
}

/** The owner id of this process. Needs `--allow-sys=hostname` and read access to `/proc`. */
export function currentOwner(): string {
  const { start } = parseStat(Deno.readTextFileSync(`/proc/${Deno.pid}/stat`));
  return formatOwner({ host: Deno.hostname(), boot: bootId(), pid: Deno.pid, start });
}

/** {@linkcode Liveness} from `/proc`: exact for owners on this host and boot. */
export class ProcLiveness implements Liveness {
  readonly #host: string;
  readonly #boot: string;

  constructor(host: string = Deno.hostname(), boot: string = bootId()) {
    this.#host = host;
    this.#boot = boot;
  }

  status(owner: string): "alive" | "dead" | "unknown" {
    const p = parseOwner(owner);
    if (!p || p.host !== this.#host) return "unknown";
    if (p.boot !== this.#boot) return "dead"; // the host rebooted since
    let text: string;
    try {
      text = Deno.readTextFileSync(`/proc/${p.pid}/stat`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return "dead";
      throw err;
    }
    const { state, start } = parseStat(text);
    // Another process with a reused pid, or a zombie nobody reaped yet: not the owner.
    if (start !== p.start || state === "Z" || state === "X") return "dead";
    return "alive";
  }
}
