/**
 * The reader and the layer rules alone, in one process: a layer is read into memory once,
 * then parsed and checked `--rounds` times with no file I/O, no hashing and no runtime start-up
 * in the numbers. What it measures is the per-entry CPU cost that validation and application
 * both pay, so a change to `src/tar/reader.ts` or `src/tar/rules.ts` can be judged on its own.
 *
 * Usage: deno run --allow-read bench/tar_parse.ts LAYER.tar [--rounds N]
 *
 * A layer with many small entries shows per-entry cost best: `bench/tar.ts --layer small --keep`
 * builds one (120,000 entries), or any `tar -cf` of a tree of small files.
 * @module
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { TarReader } from "../src/tar/reader.ts";
import { LayerRules } from "../src/tar/rules.ts";
import { DEFAULT_LIMITS } from "../src/tar/limits.ts";
import { type LayerSource, PLAIN_CHUNK as CHUNK } from "../src/tar/source.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { rounds: { type: "string", default: "7" } },
});
if (positionals.length !== 1) {
  console.error("usage: deno run --allow-read bench/tar_parse.ts LAYER.tar [--rounds N]");
  Deno.exit(2);
}
const bytes = Deno.readFileSync(positionals[0]);

/** A plain layer already in memory, handed out in the chunks the file source reads. */
function memorySource(): LayerSource {
  let at = 0;
  return {
    compression: "none",
    fileBytes: bytes.length,
    get fileBytesRead() {
      return at;
    },
    next() {
      if (at >= bytes.length) return Promise.resolve(null);
      const c = bytes.subarray(at, Math.min(at + CHUNK, bytes.length));
      at += c.length;
      return Promise.resolve(c);
    },
    skip(n: number) {
      at += n;
      return true;
    },
    sha256: () => Promise.resolve(undefined),
    close() {},
  };
}

async function pass(): Promise<number> {
  const reader = new TarReader(memorySource(), DEFAULT_LIMITS);
  const rules = new LayerRules(DEFAULT_LIMITS);
  let n = 0;
  for (let e = await reader.next(); e; e = await reader.next()) {
    const r = rules.check(e);
    if (r.violations) throw new Error(JSON.stringify(r.violations[0]));
    n++;
  }
  return n;
}

// CPU time as well as wall time: on a shared machine the CPU time of the process moves much
// less with what else runs.
const wall: number[] = [];
const cpu: number[] = [];
let entries = 0;
for (let r = 0; r < Number(values.rounds); r++) {
  const t0 = performance.now();
  const c0 = cpuUsage();
  entries = await pass();
  const c = cpuUsage(c0);
  wall.push(performance.now() - t0);
  cpu.push((c.user + c.system) / 1000);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (xs: number[]) => xs.map((t) => t.toFixed(0)).join(" ");
console.log(
  `${entries} entries, ${(bytes.length / 2 ** 20).toFixed(0)} MiB: wall median ${
    median(wall).toFixed(1)
  } ms, cpu median ${median(cpu).toFixed(1)} ms (${
    (median(cpu) * 1e6 / entries).toFixed(0)
  } ns/entry); wall ${ms(wall)}; cpu ${ms(cpu)}`,
);
