/**
 * The cost fuzzer at benchmark sizes: every family of `tests/tar/cost/families.ts` at growing
 * sizes, through `thinimage validate` and `thinimage apply` in child processes, as a table of
 * CPU time, wall time and peak RSS, with each step's growth against the input's growth. A row
 * is flagged when its work grows more than twice as fast as its input, when its peak RSS grows
 * by more than 64 MiB or passes 256 MiB, or when the command ends other than 0 or 65.
 *
 * Usage: deno run -A bench/cost.ts [--family NAME]... [--command validate|apply]
 *          [--sizes 100,400,...] [--deadline SECONDS] [--json]
 * Exits 1 when any row is flagged.
 * @module
 */
import { parseArgs } from "node:util";
import { type CostCommand, FAMILIES } from "../tests/tar/cost/families.ts";
import { baseline, judge, measure, type Measurement, mib } from "../tests/tar/cost/run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    family: { type: "string", multiple: true },
    command: { type: "string", multiple: true },
    sizes: { type: "string" },
    deadline: { type: "string", default: "300" },
    json: { type: "boolean" },
  },
});
const deadline = Number(values.deadline);
const families = FAMILIES.filter((f) => !values.family || values.family.includes(f.name));
if (families.length === 0) {
  console.error(`no such family; one of: ${FAMILIES.map((f) => f.name).join(", ")}`);
  Deno.exit(2);
}
const dir = await Deno.makeTempDir({ prefix: "thinimage-cost-bench-" });
const rows: (Measurement & { flag: string })[] = [];
let flagged = 0;
let header = false;
try {
  const bases: Partial<Record<CostCommand, Measurement>> = {};
  for (const f of families) {
    for (const command of f.commands) {
      if (values.command && !values.command.includes(command)) continue;
      const base = bases[command] ??= await baseline(command, dir);
      const sizes = values.sizes ? values.sizes.split(",").map(Number) : f.bench;
      let prev: Measurement | undefined;
      for (const n of sizes) {
        const m = await measure(f, n, command, dir, deadline);
        const problems = prev ? judge(prev, m, base) : judge(m, m, base);
        const flag = problems.length ? "FLAG" : "";
        if (flag) {
          flagged++;
          for (const p of problems) console.error(`# ${f.name} ${p}`);
        }
        rows.push({ ...m, flag });
        if (!values.json) printRow(m, prev, base, flag);
        prev = m;
        // Past the deadline once, larger sizes only take longer.
        if (m.code === -1) break;
      }
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
if (values.json) console.log(JSON.stringify(rows, null, 2));
Deno.exit(flagged ? 1 : 0);

function printRow(
  m: Measurement,
  prev: Measurement | undefined,
  base: Measurement,
  flag: string,
): void {
  if (!header) {
    console.log(
      "| family | command | n | input | exit | CPU s | wall s | peak RSS | work growth / input growth | |",
    );
    console.log("|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
    header = true;
  }
  let growth = "";
  if (prev) {
    const work = (x: Measurement) => Math.max(x.cpu - base.cpu, 0.01);
    const input = Math.max(m.inputBytes / prev.inputBytes, m.n / prev.n);
    growth = `${(work(m) / work(prev)).toFixed(1)} / ${input.toFixed(1)}`;
  }
  console.log(
    `| ${m.family} | ${m.command} | ${m.n} | ${kb(m.inputBytes)} | ${
      m.code === -1 ? "killed" : m.code
    } | ${m.cpu.toFixed(2)} | ${m.wall.toFixed(2)} | ${mib(m.rssKiB)} | ${growth} | ${flag} |`,
  );
}

function kb(b: number): string {
  return b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
}
