// The cost fuzzer at small sizes (bench/cost.ts runs the same families larger): every family of
// hostile layers at n and 4n through the real CLI in child processes; each run must end 0 or
// 65, its CPU time above startup may grow at most 2x faster than its input, its peak RSS by at
// most 64 MiB and never past 256 MiB.
//
// Families whose `apply` needs issue 12's applier rewrite are listed as ignored unless
// THINIMAGE_COST_APPLIER=1 (the lead runs them once the applier lands).
import { FAMILIES } from "./cost/families.ts";
import { baseline, judge, measure, type Measurement } from "./cost/run.ts";

const APPLIER = Deno.env.get("THINIMAGE_COST_APPLIER") === "1";
const dir = Deno.makeTempDirSync({ prefix: "thinimage-cost-test-" });
const bases: Record<string, Promise<Measurement>> = {};

for (const f of FAMILIES) {
  for (const command of f.commands) {
    const needsApplier = command === "apply" && f.applier !== undefined;
    Deno.test({
      name: `cost: ${f.name} ${command}${needsApplier ? " (needs the applier rewrite)" : ""}`,
      ignore: needsApplier && !APPLIER,
      async fn() {
        const base = await (bases[command] ??= baseline(command, dir));
        const n = command === "apply" ? f.testApply ?? f.test : f.test;
        const small = await measure(f, n, command, dir, 120);
        const large = await measure(f, n * 4, command, dir, 120);
        const problems = judge(small, large, base);
        if (problems.length) {
          throw new Error(`${f.name} (${f.about}):\n  ${problems.join("\n  ")}`);
        }
      },
    });
  }
}

Deno.test("cost: cleanup", () => {
  Deno.removeSync(dir, { recursive: true });
});
