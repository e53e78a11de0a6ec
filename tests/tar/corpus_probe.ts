/**
 * Run by corpus_test.ts in its own process (so its peak memory is the validator's alone, not the
 * test runner's): validates each file given and prints one JSON line per file, then the peak RSS.
 * @module
 */
import { validateLayer } from "../../src/tar/validate.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";

for (const file of Deno.args) {
  const start = performance.now();
  let outcome: string;
  try {
    await validateLayer(file);
    outcome = "accepted";
  } catch (err) {
    outcome = err instanceof LayerRejectedError ? err.violations[0].rule : `crash: ${err}`;
  }
  console.log(JSON.stringify({ file, outcome, ms: Math.round(performance.now() - start) }));
}
const status = Deno.readTextFileSync("/proc/self/status");
console.log(JSON.stringify({ peakKiB: Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) }));
