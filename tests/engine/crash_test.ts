/**
 * Crash and resume for real: child Deno processes run machines and are SIGKILLed mid-transition
 * or between two transitions; another process resumes. Every transition appends a line to a
 * log file, so the log counts side effects across processes.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { openStore } from "../../src/store/db.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";

const WORKER = new URL("./fixtures/worker.ts", import.meta.url).pathname;

interface Case {
  dir: string;
  db: string;
  log: string;
}

function newCase(): Case {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-crash-test-" });
  return { dir, db: `${dir}/thinimage.db`, log: `${dir}/effects.log` };
}

function worker(c: Case, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-sys=hostname",
      WORKER,
      c.db,
      c.log,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Run a worker until it reaches its stop point (its marker file), then SIGKILL it. */
async function killAtStop(c: Case, args: string[]): Promise<void> {
  const marker = `${c.log}.marker`;
  try {
    Deno.removeSync(marker);
  } catch { /* none yet */ }
  const child = worker(c, args);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  while (!exists(marker)) {
    if (exited) {
      const out = await child.output().catch(() => undefined);
      throw new Error(
        `worker exited before its stop point: ${new TextDecoder().decode(out?.stderr)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  const s = await status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  assertEquals(s.signal, "SIGKILL");
}

/** Run a worker to the end; returns its JSON line. */
async function runToEnd(c: Case, args: string[]): Promise<Record<string, unknown>> {
  const out = await worker(c, args).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `worker failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Lines of the effects log, without attempt details: "machine resource state". */
function effects(c: Case): string[] {
  return Deno.readTextFileSync(c.log).trim().split("\n");
}
function count(c: Case, prefix: string): number {
  return effects(c).filter((l) => l.startsWith(prefix + " ")).length;
}

function runsOf(c: Case) {
  const store = openStore(c.db);
  const runs = new SqliteRunStore(store);
  const all = runs.list({ limit: 100 });
  const events = Object.fromEntries(all.map((r) => [r.id, runs.events(r.id)]));
  store.close();
  return { all, events };
}

Deno.test("SIGKILL in the middle of a transition: another process resumes and re-runs only it", async () => {
  const c = newCase();
  try {
    await killAtStop(c, ["start", "crash-one", "r1", "--hang", "b"]);
    const before = runsOf(c).all;
    assertEquals([before[0].status, before[0].state], ["active", "b"]);
    const out = await runToEnd(c, ["resume"]);
    assertEquals((out.resumed as string[]).length, 1);
    assertEquals(Object.values(out.results as object), [{ path: ["a", "b", "c"] }]);
    assertEquals(effects(c), [
      "crash-one r1 a attempt=1 restarted=false",
      "crash-one r1 b attempt=1 restarted=false",
      "crash-one r1 b attempt=2 restarted=true",
      "crash-one r1 c attempt=1 restarted=false",
    ]);
    const { all, events } = runsOf(c);
    assertEquals([all[0].status, all[0].state, all[0].owner], ["done", "done", null]);
    assertEquals(events[all[0].id].filter((e) => e.kind === "resume").length, 1);
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});

Deno.test("SIGKILL between two transitions: the next one runs once, completed ones never again", async () => {
  const c = newCase();
  try {
    await killAtStop(c, ["start", "crash-one", "r1", "--stop-after", "a"]);
    const out = await runToEnd(c, ["resume"]);
    assertEquals(Object.values(out.results as object), [{ path: ["a", "b", "c"] }]);
    assertEquals(effects(c), [
      "crash-one r1 a attempt=1 restarted=false",
      "crash-one r1 b attempt=1 restarted=false",
      "crash-one r1 c attempt=1 restarted=false",
    ]);
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});

Deno.test("starting the same resource again takes over a dead process's run and resumes it", async () => {
  const c = newCase();
  try {
    await killAtStop(c, ["start", "crash-one", "r1", "--hang", "c"]);
    const out = await runToEnd(c, ["start", "crash-one", "r1"]);
    assertEquals(out.res, { path: ["a", "b", "c"] });
    assertEquals([
      count(c, "crash-one r1 a"),
      count(c, "crash-one r1 b"),
      count(c, "crash-one r1 c"),
    ], [
      1,
      1,
      2,
    ]);
    assertEquals(runsOf(c).all.length, 1); // the same run, not a second one
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});

Deno.test("two active runs of one machine killed at different points resume independently", async () => {
  const c = newCase();
  try {
    await killAtStop(c, ["start", "crash-one", "r1", "--stop-after", "a"]);
    await killAtStop(c, ["start", "crash-one", "r2", "--hang", "c"]);
    const out = await runToEnd(c, ["resume"]);
    assertEquals((out.resumed as string[]).length, 2);
    for (const r of Object.values(out.results as object)) {
      assertEquals(r, { path: ["a", "b", "c"] });
    }
    const n = (res: string, s: string) => count(c, `crash-one ${res} ${s}`);
    assertEquals([n("r1", "a"), n("r1", "b"), n("r1", "c")], [1, 1, 1]);
    assertEquals([n("r2", "a"), n("r2", "b"), n("r2", "c")], [1, 1, 2]);
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});

Deno.test("machines sharing a request type never resume each other's runs", async () => {
  const c = newCase();
  try {
    await killAtStop(c, ["start", "crash-one", "r1", "--stop-after", "a"]);
    const onlyTwo = await runToEnd(c, ["resume", "crash-two"]);
    assertEquals(onlyTwo.resumed, []);
    assertEquals(runsOf(c).all[0].status, "active");
    const both = await runToEnd(c, ["resume", "crash-one", "crash-two"]);
    assertEquals((both.resumed as string[]).length, 1);
    assertEquals(effects(c).filter((l) => l.startsWith("crash-two")), []);
    assertEquals([count(c, "crash-one r1 b"), count(c, "crash-one r1 c")], [1, 1]);
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});

Deno.test("a corrupt run record left by a dead process does not stop the others", async () => {
  const c = newCase();
  try {
    for (const r of ["r1", "r2", "r3"]) {
      await killAtStop(c, ["start", "crash-one", r, "--stop-after", "a"]);
    }
    const store = openStore(c.db);
    store.db.prepare("UPDATE runs SET response = '{\"path\": [' WHERE resource_id = 'r2'").run();
    store.close();
    const out = await runToEnd(c, ["resume"]);
    assertEquals((out.resumed as string[]).length, 2);
    const failed = out.failed as { runId: string; error: string }[];
    assertEquals(failed.length, 1);
    assert(failed[0].error.includes("response is not valid JSON"), failed[0].error);
    assertEquals([
      count(c, "crash-one r1 c"),
      count(c, "crash-one r2 b"),
      count(c, "crash-one r3 c"),
    ], [
      1,
      0,
      1,
    ]);
    const byRes = Object.fromEntries(runsOf(c).all.map((r) => [r.resourceId, r.status]));
    assertEquals(byRes, { r1: "done", r2: "failed", r3: "done" });
  } finally {
    Deno.removeSync(c.dir, { recursive: true });
  }
});
