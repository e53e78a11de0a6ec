/**
 * The one SQLite database of a state directory: opening, pragmas, migrations, transactions.
 *
 * Several processes (overlapping cron jobs) share the file. WAL lets readers run beside a
 * writer; every write transaction starts with `BEGIN IMMEDIATE` so that two writers queue on
 * the busy timeout instead of deadlocking on a read-to-write upgrade (which SQLite answers
 * with SQLITE_BUSY at once, whatever the timeout); and a transaction that still meets BUSY is
 * retried as a whole. So no caller ever sees "database is locked".
 *
 * @example
 * ```ts
 * import { openStore } from "./db.ts";
 * const store = openStore("/var/lib/thinimage/thinimage.db");
 * store.tx(() => store.db.prepare("INSERT INTO kv (k, v) VALUES (?, ?)").run("a", "b"));
 * store.close();
 * ```
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { type Migration, MIGRATIONS } from "./migrations.ts";
import { TemporaryError, ThinimageError } from "../errors.ts";
import { backoffDelay, type RetryPolicy, sleepSync } from "../retry.ts";

/**
 * Waits between attempts at a transaction that met another process's lock: 5 to 10 ms at
 * first, doubling to 200 to 400 ms. Transactions are synchronous, so these waits block
 * ({@linkcode sleepSync}); attempts are bounded by `txRetryMs`, not by count.
 */
const BUSY_RETRY: RetryPolicy = {
  maxAttempts: Infinity,
  maxElapsedMs: Infinity,
  initialDelayMs: 10,
  maxDelayMs: 400,
  factor: 2,
  jitter: 0.5,
};

/** Options for {@linkcode openStore}. */
export interface OpenOptions {
  /** How long one statement waits for another process's lock, in ms (default 10 s). */
  busyTimeoutMs?: number;
  /** How long a whole transaction keeps retrying on BUSY, in ms (default 60 s). */
  txRetryMs?: number;
  /** Migrations to apply (default: all of {@linkcode MIGRATIONS}); tests pass a prefix. */
  migrations?: readonly Migration[];
}

/** An open store. Not safe to share across processes: each process opens its own. */
export class Store {
  readonly #txRetryMs: number;
  #depth = 0;

  constructor(readonly db: DatabaseSync, readonly path: string, txRetryMs: number) {
    this.#txRetryMs = txRetryMs;
  }

  /**
   * Run `fn` in one write transaction (`BEGIN IMMEDIATE`), committing when it returns and
   * rolling back when it throws. Nested calls join the outer transaction. `fn` must be
   * synchronous: a transaction never spans an await, so it never holds the lock across I/O.
   */
  tx<T>(fn: () => T): T {
    if (this.#depth > 0) {
      this.#depth++;
      try {
        return fn();
      } finally {
        this.#depth--;
      }
    }
    const deadline = Date.now() + this.#txRetryMs;
    for (let attempt = 0;; attempt++) {
      try {
        this.db.exec("BEGIN IMMEDIATE");
      } catch (err) {
        if (isBusy(err) && Date.now() < deadline) {
          sleepSync(backoffDelay(attempt + 1, BUSY_RETRY));
          continue;
        }
        throw wrapSqliteError(err, "begin transaction");
      }
      this.#depth = 1;
      try {
        const result = fn();
        this.db.exec("COMMIT");
        return result;
      } catch (err) {
        try {
          this.db.exec("ROLLBACK");
        } catch { /* already rolled back by SQLite */ }
        if (isBusy(err) && Date.now() < deadline) {
          sleepSync(backoffDelay(attempt + 1, BUSY_RETRY));
          continue;
        }
        throw err;
      } finally {
        this.#depth = 0;
      }
    }
  }

  /** The schema version the database is at. */
  schemaVersion(): number {
    const row = this.db.prepare("PRAGMA user_version").get() as { user_version: number };
    return row.user_version;
  }

  /** Close the connection (idempotent). */
  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

/**
 * Open (creating if needed) the database at `path`, set its pragmas and bring its schema up
 * to date. Migrations run in one transaction each, so a crash leaves a whole version.
 */
export function openStore(path: string, options: OpenOptions = {}): Store {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 10_000 });
  } catch (err) {
    throw wrapSqliteError(err, `open ${path}`);
  }
  const store = new Store(db, path, options.txRetryMs ?? 60_000);
  try {
    // journal_mode=WAL needs a brief exclusive lock the first time; retry it like a write.
    retryBusy(() => db.exec("PRAGMA journal_mode = WAL"), options.txRetryMs ?? 60_000);
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA synchronous = NORMAL");
    migrate(store, options.migrations ?? MIGRATIONS);
  } catch (err) {
    store.close();
    throw err;
  }
  return store;
}

/** Apply every migration above the database's `user_version`, each in its own transaction. */
export function migrate(store: Store, migrations: readonly Migration[]): void {
  for (const [i, m] of migrations.entries()) {
    if (m.version !== i + 1) {
      throw new ThinimageError(`migration list is out of order at ${m.name}`);
    }
  }
  const known = migrations.length;
  // Every open after the first: one read, where the checks below take six write locks.
  if (store.schemaVersion() === known) return;
  store.tx(() => {
    const current = store.schemaVersion();
    if (current > known) {
      throw new ThinimageError(
        `database ${store.path} has schema version ${current}, newer than this build knows (${known}); upgrade thinimage`,
      );
    }
  });
  for (const m of migrations) {
    store.tx(() => {
      // Re-read inside the lock: another process may have migrated meanwhile.
      if (store.schemaVersion() >= m.version) return;
      store.db.exec(m.sql);
      store.db.exec(`PRAGMA user_version = ${m.version}`);
    });
  }
}

function retryBusy(fn: () => void, ms: number): void {
  const deadline = Date.now() + ms;
  for (let attempt = 0;; attempt++) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw wrapSqliteError(err, "set up database");
      sleepSync(backoffDelay(attempt + 1, BUSY_RETRY));
    }
  }
}

/** True when an error is SQLite's BUSY or LOCKED. */
export function isBusy(err: unknown): boolean {
  const e = err as { errcode?: number; message?: string };
  const primary = typeof e?.errcode === "number" ? e.errcode & 0xff : -1;
  return primary === 5 || primary === 6 || /database is (locked|busy)/i.test(e?.message ?? "");
}

function wrapSqliteError(err: unknown, what: string): Error {
  if (isBusy(err)) return new TemporaryError(`${what}: the database stayed busy`, { cause: err });
  if (err instanceof Deno.errors.NotCapable) return err;
  return new ThinimageError(`${what}: ${(err as Error)?.message ?? err}`, { cause: err });
}
