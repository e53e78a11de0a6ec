/**
 * Engine overhead on the real SQLite store: what a run costs in durable bookkeeping, apart
 * from the work its transitions do. Transitions here do nothing, so the numbers are the
 * engine's floor: runs per second one at a time and 50 at once (each run of three transitions
 * writes 8 events, each in its own transaction), and how long `resumeAll` takes to claim and
 * finish 200 runs left behind by a dead owner. Medians of ROUNDS rounds, on a database in a
 * fresh temporary directory (on disk, not tmpfs, unless TMPDIR says otherwise).
 *
 * Usage: deno run -A bench/engine.ts [--rounds N]
 * @module
 */
import { parseArgs } from "node:util";
import { openStore } from "../src/store/db.ts";
import { SqliteRunStore } from "../src/store/runs.ts";
import { Engine } from "../src/engine/engine.ts";
import { machine } from "../src/engine/machine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "5" } },
});
const ROUNDS = Number(values.rounds);

const noop = machine<{ i: number }, { i: number }>("bench")
  .start("a", ({ request }) => Promise.resolve({ i: request.i }))
  .to("b", ({ response }) => Promise.resolve(response!))
  .to("c", ({ response }) => Promise.resolve(response!))
  .end("done");

function setup(owner: string, dead = new Set<string>()) {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-bench-" });
  const store = openStore(`${dir}/thinimage.db`);
  const runs = new SqliteRunStore(store);
  const engine = new Engine(runs, {
    owner,
    liveness: { status: (o) => (dead.has(o) ? "dead" : "alive") },
  }).register(noop);
  return {
    dir,
    runs,
    engine,
    done() {
      store.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

async function sequential(n: number): Promise<number> {
  const s = setup("bench/1/1");
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await (await s.engine.start(noop, `r${i}`, { i })).wait();
  const ms = performance.now() - t0;
  s.done();
  return n / (ms / 1000);
}

async function parallel(n: number): Promise<number> {
  const s = setup("bench/1/1");
  const t0 = performance.now();
  const handles = await Promise.all(
    Array.from({ length: n }, (_, i) => s.engine.start(noop, `r${i}`, { i })),
  );
  await Promise.all(handles.map((h) => h.wait()));
  const ms = performance.now() - t0;
  s.done();
  return n / (ms / 1000);
}

async function resume(n: number): Promise<number> {
  const s = setup("bench/2/2", new Set(["ghost/1/1"]));
  for (let i = 0; i < n; i++) {
    s.runs.createOrGetActive(
      {
        id: `run-${i}`,
        machine: "bench",
        resourceId: `r${i}`,
        request: `{"i":${i}}`,
        state: "a",
        owner: "ghost/1/1",
        leaseUntil: 0,
      },
      { kind: "start", state: "a" },
      i,
    );
  }
  const t0 = performance.now();
  const report = await s.engine.resumeAll();
  await Promise.all(report.resumed.map((h) => h.wait()));
  const ms = performance.now() - t0;
  if (report.resumed.length !== n) throw new Error(`resumed ${report.resumed.length} of ${n}`);
  s.done();
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const rows: [string, string][] = [];
const seq: number[] = [];
const par: number[] = [];
const res: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  seq.push(await sequential(300));
  par.push(await parallel(300));
  res.push(await resume(200));
}
rows.push(["runs/s, one at a time (3 transitions, 8 events each)", median(seq).toFixed(0)]);
rows.push(["runs/s, 300 started at once", median(par).toFixed(0)]);
rows.push(["ms to resume and finish 200 dead-owner runs", median(res).toFixed(0)]);
console.log(`engine overhead, median of ${ROUNDS} rounds (Deno ${Deno.version.deno})`);
for (const [k, v] of rows) console.log(`  ${k.padEnd(56)} ${v.padStart(8)}`);
