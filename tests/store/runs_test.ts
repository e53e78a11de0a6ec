import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { openStore } from "../../src/store/db.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";

function fresh() {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-runs-test-" });
  const store = openStore(`${dir}/thinimage.db`);
  return {
    store,
    runs: new SqliteRunStore(store),
    done() {
      store.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const run = (id: string, resourceId: string, machine = "m", owner = "me") => ({
  id,
  machine,
  resourceId,
  request: '{"x":1}',
  state: "a",
  owner,
  leaseUntil: 100,
});

Deno.test("single flight holds per (machine, resource) and frees once the run finishes", () => {
  const t = fresh();
  try {
    assert(t.runs.createOrGetActive(run("1", "r"), { kind: "start" }, 1).created);
    const again = t.runs.createOrGetActive(run("2", "r"), { kind: "start" }, 2);
    assertEquals([again.created, again.run.id], [false, "1"]);
    assert(t.runs.createOrGetActive(run("3", "r", "other"), { kind: "start" }, 3).created);
    assert(t.runs.record("1", "me", { status: "done", owner: null }, { kind: "finish" }, 4));
    assert(t.runs.createOrGetActive(run("4", "r"), { kind: "start" }, 5).created);
    // The index, not only the code, refuses a second active run.
    assertThrows(() =>
      t.store.db.prepare(
        "INSERT INTO runs (id, machine, resource_id, request, state, status, created_at, updated_at) VALUES ('5', 'm', 'r', '{}', 'a', 'active', 0, 0)",
      ).run()
    );
  } finally {
    t.done();
  }
});

Deno.test("a change and its event are written together, and only by the owner", () => {
  const t = fresh();
  try {
    t.runs.createOrGetActive(run("1", "r"), { kind: "start", state: "a" }, 1);
    assertEquals(
      t.runs.record("1", "thief", { state: "b" }, { kind: "begin", state: "b" }, 2),
      false,
    );
    assertEquals(t.runs.get("1")!.state, "a");
    assertEquals(t.runs.events("1").map((e) => e.kind), ["start"]);
    assert(
      t.runs.record("1", "me", { state: "b", attempts: 1 }, {
        kind: "begin",
        state: "b",
        attempt: 1,
      }, 3),
    );
    const r = t.runs.get("1")!;
    assertEquals([r.state, r.attempts, r.updatedAt], ["b", 1, 3]);
    assertEquals(t.runs.events("1").map((e) => [e.kind, e.state, e.attempt, e.at]), [
      ["start", "a", null, 1],
      ["begin", "b", 1, 3],
    ]);
    // A finished run takes no more changes, even from its last owner.
    assert(t.runs.record("1", "me", { status: "done", owner: null }, { kind: "finish" }, 4));
    assertEquals(t.runs.record("1", "me", { state: "c" }, { kind: "begin" }, 5), false);
  } finally {
    t.done();
  }
});

Deno.test("claim is compare-and-set on the previous owner", () => {
  const t = fresh();
  try {
    t.runs.createOrGetActive(run("1", "r", "m", "dead"), { kind: "start" }, 1);
    assert(t.runs.claim("1", "dead", "a", 50, { kind: "resume" }, 2));
    assertEquals(t.runs.claim("1", "dead", "b", 50, { kind: "resume" }, 3), false);
    assertEquals([t.runs.get("1")!.owner, t.runs.get("1")!.leaseUntil], ["a", 50]);
    assert(t.runs.renew("1", "a", 99, 4));
    assertEquals(t.runs.renew("1", "b", 99, 4), false);
    assert(t.runs.record("1", "a", { owner: null }, { kind: "cancel" }, 5));
    assertEquals([t.runs.get("1")!.owner, t.runs.get("1")!.leaseUntil], [null, null]);
    assert(t.runs.claim("1", null, "b", 60, { kind: "resume" }, 6));
    assertEquals(t.runs.events("1").map((e) => e.kind), ["start", "resume", "cancel", "resume"]);
  } finally {
    t.done();
  }
});

Deno.test("active lists one machine's active runs; list goes newest first", () => {
  const t = fresh();
  try {
    t.runs.createOrGetActive(run("1", "r1", "m"), { kind: "start" }, 1);
    t.runs.createOrGetActive(run("2", "r2", "other"), { kind: "start" }, 2);
    t.runs.createOrGetActive(run("3", "r1", "other"), { kind: "start" }, 3);
    t.runs.createOrGetActive(run("4", "r4", "m"), { kind: "start" }, 4);
    t.runs.record("4", "me", { status: "failed", owner: null }, { kind: "finish" }, 5);
    assertEquals(t.runs.active("m").map((r) => r.id), ["1"]);
    assertEquals(t.runs.active("other").map((r) => r.id), ["2", "3"]);
    assertEquals(t.runs.list({ limit: 3 }).map((r) => r.id), ["4", "3", "2"]);
    assertEquals(t.runs.list({ resourceId: "r1", limit: 10 }).map((r) => r.id), ["3", "1"]);
  } finally {
    t.done();
  }
});

Deno.test("prune forgets old finished runs and their events, keeps the newest per resource and every active run", () => {
  const t = fresh();
  try {
    // r: five finished runs at t=10..50, then an active one; s: one finished run at t=5.
    for (let i = 1; i <= 5; i++) {
      t.runs.createOrGetActive(run(`r${i}`, "r"), { kind: "start" }, i * 10);
      t.runs.record(`r${i}`, "me", { status: i === 3 ? "failed" : "done", owner: null }, {
        kind: "finish",
      }, i * 10 + 1);
    }
    t.runs.createOrGetActive(run("r6", "r"), { kind: "start" }, 60);
    t.runs.createOrGetActive(run("s1", "s"), { kind: "start" }, 5);
    t.runs.record("s1", "me", { status: "done", owner: null }, { kind: "finish" }, 6);
    t.runs.createOrGetActive(run("old-active", "x"), { kind: "start" }, 1);

    // Before t=45 and beyond the newest 2 finished runs of each (machine, resource): r1-r3.
    assertEquals(t.runs.prune({ before: 45, keep: 2, dryRun: true }), 3);
    assertEquals(t.runs.list({ limit: 100 }).length, 8, "a dry run forgets nothing");
    assertEquals(t.runs.prune({ before: 45, keep: 2 }), 3);
    const left = t.runs.list({ limit: 100 }).map((r) => r.id).sort();
    assertEquals(left, ["old-active", "r4", "r5", "r6", "s1"]);
    const orphans = t.store.db.prepare(
      "SELECT COUNT(*) AS n FROM run_events WHERE run_id NOT IN (SELECT id FROM runs)",
    ).get() as { n: number };
    assertEquals(orphans.n, 0);
    assertEquals(t.runs.events("r1"), []);
    // keep 0 and a late cutoff: every finished run goes, the active ones stay.
    assertEquals(t.runs.prune({ before: 1000, keep: 0 }), 3);
    assertEquals(t.runs.list({ limit: 100 }).map((r) => r.id).sort(), ["old-active", "r6"]);
  } finally {
    t.done();
  }
});

Deno.test("hasActive: an active run of one of the machines on the resource, and no other", () => {
  const t = fresh();
  try {
    assert(!t.runs.hasActive("web", ["activate", "deactivate"]));
    t.runs.createOrGetActive(run("1", "web", "pull"), { kind: "start" }, 1);
    t.runs.createOrGetActive(run("2", "other", "activate"), { kind: "start" }, 1);
    assert(!t.runs.hasActive("web", ["activate", "deactivate"]));
    t.runs.createOrGetActive(run("3", "web", "deactivate"), { kind: "start" }, 2);
    assert(t.runs.hasActive("web", ["activate", "deactivate"]));
    t.runs.record("3", "me", { status: "done", owner: null }, { kind: "finish" }, 3);
    assert(!t.runs.hasActive("web", ["activate", "deactivate"]));
  } finally {
    t.done();
  }
});
