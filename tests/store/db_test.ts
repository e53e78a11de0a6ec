import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { openStore } from "../../src/store/db.ts";
import { DB_FILE } from "../../src/state_dir.ts";
import { MIGRATIONS } from "../../src/store/migrations.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";
import { ThinimageError } from "../../src/errors.ts";

function tempDb(): { dir: string; path: string } {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-store-test-" });
  return { dir, path: `${dir}/${DB_FILE}` };
}

const newRun = (id: string, resourceId = id) => ({
  id,
  machine: "m",
  resourceId,
  request: "{}",
  state: "a",
  owner: "o",
  leaseUntil: 0,
});

Deno.test("migrating an empty database reaches the latest schema, in WAL, with STRICT tables", () => {
  const { dir, path } = tempDb();
  try {
    const store = openStore(path);
    assertEquals(store.schemaVersion(), MIGRATIONS.length);
    const mode = store.db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
    assertEquals(mode.journal_mode, "wal");
    const fk = store.db.prepare("PRAGMA foreign_keys").get() as { foreign_keys: number };
    assertEquals(fk.foreign_keys, 1);
    const tables = store.db
      .prepare("SELECT name, strict FROM pragma_table_list WHERE name IN ('runs', 'run_events')")
      .all() as { name: string; strict: number }[];
    assertEquals(tables.map((t) => [t.name, t.strict]).sort(), [["run_events", 1], ["runs", 1]]);
    // STRICT refuses a wrong type; the foreign key refuses an event without its run.
    assertThrows(() =>
      store.db.prepare(
        "INSERT INTO runs (id, machine, resource_id, request, state, status, attempts, created_at, updated_at) VALUES ('x', 'm', 'r', '{}', 'a', 'active', 'many', 0, 0)",
      ).run()
    );
    assertThrows(() =>
      store.db.prepare("INSERT INTO run_events (run_id, kind, at) VALUES ('nope', 'start', 0)")
        .run()
    );
    store.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("migrating from every earlier schema version keeps the data", () => {
  for (let from = 1; from < MIGRATIONS.length; from++) {
    const { dir, path } = tempDb();
    try {
      const old = openStore(path, { migrations: MIGRATIONS.slice(0, from) });
      assertEquals(old.schemaVersion(), from);
      new SqliteRunStore(old).createOrGetActive(newRun("kept"), { kind: "start" }, 1);
      old.close();
      const store = openStore(path);
      assertEquals(store.schemaVersion(), MIGRATIONS.length, `from version ${from}`);
      assertEquals(new SqliteRunStore(store).get("kept")?.status, "active");
      store.close();
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("a database newer than this build is refused, not downgraded", () => {
  const { dir, path } = tempDb();
  try {
    openStore(path).close();
    assertThrows(
      () => openStore(path, { migrations: MIGRATIONS.slice(0, 1) }),
      ThinimageError,
      "newer than this build knows",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a transaction that throws leaves nothing behind", () => {
  const { dir, path } = tempDb();
  try {
    const store = openStore(path);
    const runs = new SqliteRunStore(store);
    assertThrows(() =>
      store.tx(() => {
        runs.createOrGetActive(newRun("gone"), { kind: "start" }, 1);
        throw new Error("changed my mind");
      })
    );
    assertEquals(runs.get("gone"), undefined);
    assertEquals(runs.events("gone"), []);
    store.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("two processes writing at once never see 'database is locked'", async () => {
  const { dir, path } = tempDb();
  try {
    openStore(path).close();
    const writer = new URL("./fixtures/writer.ts", import.meta.url).pathname;
    const spawn = (name: string, n: number, hold: number) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", writer, path, name, String(n), String(hold)],
        stdout: "piped",
        stderr: "piped",
      }).output();
    // One writer holds each transaction for 5 ms, so the other must queue behind it.
    const outs = await Promise.all([
      spawn("fast", 400, 0),
      spawn("slow", 100, 5),
      spawn("fast2", 400, 0),
    ]);
    const dec = new TextDecoder();
    for (const o of outs) {
      const err = dec.decode(o.stderr);
      assert(o.success, `writer failed: ${err}`);
      assert(!/locked|busy/i.test(err), err);
    }
    assertEquals(outs.map((o) => JSON.parse(dec.decode(o.stdout)).written), [400, 100, 400]);
    const store = openStore(path);
    const count = store.db.prepare("SELECT count(*) AS n FROM runs WHERE status = 'done'")
      .get() as { n: number };
    const events = store.db.prepare("SELECT count(*) AS n FROM run_events").get() as { n: number };
    assertEquals([count.n, events.n], [900, 3600]);
    store.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
