/**
 * Shared set-up for the engine tests: a SQLite run store in a fresh directory (for tests that
 * need what only a database holds; the others take the in-memory store), and an injected
 * liveness whose dead owners the test names.
 * @module
 */
import { openStore, type Store } from "../../src/store/db.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";
import { Engine, type EngineOptions } from "../../src/engine/engine.ts";
import type { Liveness, NewRun, RunStore } from "../../src/engine/types.ts";

/** A fresh store; `close()` removes it. */
export function tempStore(): { store: Store; runs: SqliteRunStore; dir: string; close(): void } {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-engine-test-" });
  const store = openStore(`${dir}/thinimage.db`);
  return {
    store,
    runs: new SqliteRunStore(store),
    dir,
    close() {
      store.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

/** A run to create in the store tests: machine `m` and owner `me` unless named. */
export function newRun(id: string, resourceId: string, machine = "m", owner = "me"): NewRun {
  return { id, machine, resourceId, request: '{"x":1}', state: "a", owner, leaseUntil: 100 };
}

/** Liveness for tests: owners in `dead` are dead, `unknown` unknown, all others alive. */
export class FakeLiveness implements Liveness {
  readonly dead = new Set<string>();
  readonly unknown = new Set<string>();
  status(owner: string): "alive" | "dead" | "unknown" {
    if (this.dead.has(owner)) return "dead";
    return this.unknown.has(owner) ? "unknown" : "alive";
  }
}

/** An engine on `runs` with a test owner. */
export function engineOn(
  runs: RunStore,
  liveness: Liveness,
  extra: Partial<EngineOptions> = {},
): Engine {
  return new Engine(runs, { owner: "test/0/1/1", liveness, pollMs: 5, ...extra });
}

/** A promise with its resolver, to hand control between a transition and its test. */
export function gate<T = void>(): { promise: Promise<T>; open(v: T): void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}
