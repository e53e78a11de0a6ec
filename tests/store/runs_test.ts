import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { newRun as run, tempStore } from "../engine/helpers.ts";

// The RunStore contract (single flight, fencing, claim, ordering) runs against this store and the
// in-memory one in tests/engine/run_store_test.ts; here is what only SQLite does.

Deno.test("single flight holds in the index too, not only in createOrGetActive", () => {
  const t = tempStore();
  try {
    assert(t.runs.createOrGetActive(run("1", "r"), { kind: "start" }, 1).created);
    assertThrows(() =>
      t.store.db.prepare(
        "INSERT INTO runs (id, machine, resource_id, request, state, status, created_at, updated_at) VALUES ('5', 'm', 'r', '{}', 'a', 'active', 0, 0)",
      ).run()
    );
  } finally {
    t.close();
  }
});

Deno.test("prune forgets old finished runs and their events, keeps the newest per resource and every active run", () => {
  const t = tempStore();
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
    t.close();
  }
});

Deno.test("hasActive: an active run of one of the machines on the resource, and no other", () => {
  const t = tempStore();
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
    t.close();
  }
});
