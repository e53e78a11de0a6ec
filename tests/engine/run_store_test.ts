/**
 * One contract for every RunStore: SQLite's (what the agent uses) and the in-memory one (what
 * the engine and machine tests use). Each case runs against both, so the in-memory store cannot
 * drift from the semantics the engine relies on. SQLite-only behaviour (its index, prune,
 * hasActive) is tested in tests/store/runs_test.ts.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { MemoryRunStore } from "../../src/engine/memory_store.ts";
import type { RunStore } from "../../src/engine/types.ts";
import { newRun as run, tempStore } from "./helpers.ts";

interface Opened {
  runs: RunStore;
  done(): void;
}

const STORES: Record<string, () => Opened> = {
  sqlite() {
    const t = tempStore();
    return { runs: t.runs, done: t.close };
  },
  memory: () => ({ runs: new MemoryRunStore(), done() {} }),
};

/** Register `fn` as one test per store. */
function contract(name: string, fn: (runs: RunStore) => void): void {
  for (const [store, open] of Object.entries(STORES)) {
    Deno.test(`${store} run store: ${name}`, () => {
      const t = open();
      try {
        fn(t.runs);
      } finally {
        t.done();
      }
    });
  }
}

contract("single flight holds per (machine, resource) and frees once the run finishes", (runs) => {
  assert(runs.createOrGetActive(run("1", "r"), { kind: "start" }, 1).created);
  const again = runs.createOrGetActive(run("2", "r"), { kind: "start" }, 2);
  assertEquals([again.created, again.run.id], [false, "1"]);
  assertEquals(runs.get("2"), undefined, "the refused run is not stored");
  assertEquals(runs.events("1").length, 1, "nor is its event");
  assert(runs.createOrGetActive(run("3", "r", "other"), { kind: "start" }, 3).created);
  assert(runs.record("1", "me", { status: "done", owner: null }, { kind: "finish" }, 4));
  assert(runs.createOrGetActive(run("4", "r"), { kind: "start" }, 5).created);
  // A run id is taken for good, finished or not.
  assertThrows(() => runs.createOrGetActive(run("1", "elsewhere"), { kind: "start" }, 6));
});

contract("a new run starts active, unattempted, with its owner's lease", (runs) => {
  const { run: r } = runs.createOrGetActive(run("1", "r"), { kind: "start", state: "a" }, 7);
  assertEquals(r, {
    id: "1",
    machine: "m",
    resourceId: "r",
    request: '{"x":1}',
    response: null,
    state: "a",
    status: "active",
    attempts: 0,
    lastError: null,
    owner: "me",
    leaseUntil: 100,
    createdAt: 7,
    updatedAt: 7,
  });
  assertEquals(runs.get("1"), r);
  assertEquals(runs.get("nope"), undefined);
  assertEquals(runs.events("nope"), []);
});

contract("a change and its event are written together, and only by the owner", (runs) => {
  runs.createOrGetActive(run("1", "r"), { kind: "start", state: "a" }, 1);
  assertEquals(
    runs.record("1", "thief", { state: "b" }, { kind: "begin", state: "b" }, 2),
    false,
  );
  assertEquals(runs.get("1")!.state, "a");
  assertEquals(runs.events("1").map((e) => e.kind), ["start"]);
  assert(
    runs.record("1", "me", { state: "b", attempts: 1 }, {
      kind: "begin",
      state: "b",
      attempt: 1,
    }, 3),
  );
  const r = runs.get("1")!;
  assertEquals([r.state, r.attempts, r.updatedAt], ["b", 1, 3]);
  assertEquals(runs.events("1").map((e) => [e.kind, e.state, e.attempt, e.at]), [
    ["start", "a", null, 1],
    ["begin", "b", 1, 3],
  ]);
  assert(
    runs.record("1", "me", { response: '{"y":2}', lastError: "boom" }, {
      kind: "complete",
      data: '{"y":2}',
    }, 4),
  );
  assertEquals([runs.get("1")!.response, runs.get("1")!.lastError], ['{"y":2}', "boom"]);
  assertEquals(runs.events("1").at(-1)!.data, '{"y":2}');
  // lastError: null clears it; a field left out is left alone.
  assert(runs.record("1", "me", { lastError: null }, { kind: "retry" }, 5));
  assertEquals([runs.get("1")!.lastError, runs.get("1")!.state], [null, "b"]);
  // A finished run takes no more changes, even from its last owner.
  assert(runs.record("1", "me", { status: "done", owner: null }, { kind: "finish" }, 6));
  assertEquals(runs.record("1", "me", { state: "c" }, { kind: "begin" }, 7), false);
  assertEquals(runs.get("1")!.status, "done");
  // Events are numbered in the order written, across runs.
  runs.createOrGetActive(run("2", "r2"), { kind: "start" }, 8);
  const seqs = [...runs.events("1"), ...runs.events("2")].map((e) => e.seq);
  assertEquals(seqs, [...seqs].sort((a, b) => a - b));
  assertEquals(new Set(seqs).size, seqs.length);
  assertEquals(runs.events("2").map((e) => e.runId), ["2"]);
});

contract("claim is compare-and-set on the previous owner", (runs) => {
  runs.createOrGetActive(run("1", "r", "m", "dead"), { kind: "start" }, 1);
  assert(runs.claim("1", "dead", "a", 50, { kind: "resume" }, 2));
  assertEquals(runs.claim("1", "dead", "b", 50, { kind: "resume" }, 3), false);
  assertEquals([runs.get("1")!.owner, runs.get("1")!.leaseUntil], ["a", 50]);
  assert(runs.renew("1", "a", 99, 4));
  assertEquals(runs.renew("1", "b", 99, 4), false);
  assertEquals([runs.get("1")!.leaseUntil, runs.get("1")!.updatedAt], [99, 4]);
  assert(runs.record("1", "a", { owner: null }, { kind: "cancel" }, 5));
  assertEquals([runs.get("1")!.owner, runs.get("1")!.leaseUntil], [null, null]);
  assertEquals(runs.renew("1", "a", 99, 5), false, "the owner let go");
  assert(runs.claim("1", null, "b", 60, { kind: "resume" }, 6));
  assertEquals(runs.events("1").map((e) => e.kind), ["start", "resume", "cancel", "resume"]);
  // A finished run is claimed by nobody, and its lease is not renewed.
  assert(runs.record("1", "b", { status: "failed", owner: null }, { kind: "finish" }, 7));
  assertEquals(runs.claim("1", null, "c", 70, { kind: "resume" }, 8), false);
  assertEquals(runs.claim("missing", null, "c", 70, { kind: "resume" }, 8), false);
  assertEquals(runs.events("1").length, 5);
});

contract("a run that finishes lets go of its owner in the same change, or not at all", (runs) => {
  runs.createOrGetActive(run("1", "r"), { kind: "start" }, 1);
  assertThrows(() => runs.record("1", "me", { status: "done" }, { kind: "finish" }, 2));
  assertThrows(() => runs.record("1", "me", { attempts: -1 }, { kind: "begin" }, 2));
  assertEquals([runs.get("1")!.status, runs.get("1")!.attempts, runs.get("1")!.updatedAt], [
    "active",
    0,
    1,
  ]);
  assertEquals(runs.events("1").map((e) => e.kind), ["start"]);
});

contract("active lists one machine's active runs; list goes newest first", (runs) => {
  runs.createOrGetActive(run("1", "r1", "m"), { kind: "start" }, 1);
  runs.createOrGetActive(run("2", "r2", "other"), { kind: "start" }, 2);
  runs.createOrGetActive(run("3", "r1", "other"), { kind: "start" }, 3);
  runs.createOrGetActive(run("4", "r4", "m"), { kind: "start" }, 4);
  runs.record("4", "me", { status: "failed", owner: null }, { kind: "finish" }, 5);
  assertEquals(runs.active("m").map((r) => r.id), ["1"]);
  assertEquals(runs.active("other").map((r) => r.id), ["2", "3"]);
  assertEquals(runs.list({ limit: 3 }).map((r) => r.id), ["4", "3", "2"]);
  assertEquals(runs.list({ resourceId: "r1", limit: 10 }).map((r) => r.id), ["3", "1"]);
});

contract("runs created in the same millisecond keep the order they were created in", (runs) => {
  for (const id of ["b", "a", "c"]) runs.createOrGetActive(run(id, id), { kind: "start" }, 1);
  runs.createOrGetActive(run("z", "z"), { kind: "start" }, 0);
  assertEquals(runs.active("m").map((r) => r.id), ["z", "b", "a", "c"]);
  assertEquals(runs.list({ limit: 10 }).map((r) => r.id), ["c", "a", "b", "z"]);
  assertEquals(runs.list({ limit: 2 }).map((r) => r.id), ["c", "a"]);
});

contract("records handed out are copies: changing one changes nothing stored", (runs) => {
  const { run: r } = runs.createOrGetActive(run("1", "r"), { kind: "start" }, 1);
  r.owner = "thief";
  runs.get("1")!.status = "done";
  runs.events("1")[0].kind = "finish";
  assertEquals([runs.get("1")!.owner, runs.get("1")!.status], ["me", "active"]);
  assertEquals(runs.events("1")[0].kind, "start");
  assert(runs.record("1", "me", { state: "b" }, { kind: "begin" }, 2));
});
