// The cost fuzzer at small sizes (bench/cost.ts runs the same families larger): every family of
// hostile layers at n and 4n through the real CLI in child processes; each run must end 0 or
// 65, its CPU time above startup may grow at most 2x faster than its input, its peak RSS by at
// most 64 MiB and never past 256 MiB.
//
// Every family runs against `apply` too: the ones marked `applier` are those the user-space
// applier before the kernel-contained one could not survive (hours, gigabytes, or exit 1).
import { FAMILIES } from "./cost/families.ts";
import { baseline, judge, measure, type Measurement } from "./cost/run.ts";

const dir = Deno.makeTempDirSync({ prefix: "thinimage-cost-test-" });
const bases: Record<string, Promise<Measurement>> = {};

for (const f of FAMILIES) {
  for (const command of f.commands) {
    Deno.test({
      name: `cost: ${f.name} ${command}`,
      async fn() {
        const base = await (bases[command] ??= baseline(command, dir));
        const n = command === "apply" ? f.testApply ?? f.test : f.test;
        let small = await measure(f, n, command, dir, 120);
        let large = await measure(f, n * 4, command, dir, 120);
        let problems = judge(small, large, base);
        if (problems.length) {
          // Once more, keeping each size's cheaper run: a process beside this one (the suite
          // runs in parallel) can inflate one measurement; a superlinear shape fails again.
          const cheaper = (a: Measurement, b: Measurement) => (b.cpu < a.cpu ? b : a);
          small = cheaper(small, await measure(f, n, command, dir, 120));
          large = cheaper(large, await measure(f, n * 4, command, dir, 120));
          problems = judge(small, large, base);
        }
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
