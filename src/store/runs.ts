/**
 * The engine's {@linkcode RunStore} in SQLite: every change to a run and the event that
 * records it are written in one transaction, and changes by an owner are fenced (applied only
 * while that owner still holds the run).
 *
 * @example
 * ```ts
 * import { openStore } from "./db.ts";
 * import { SqliteRunStore } from "./runs.ts";
 * const runs = new SqliteRunStore(openStore("/tmp/state/thinimage.db"));
 * runs.list({ limit: 10 }); // the ten most recent runs
 * ```
 * @module
 */
import type { Store } from "./db.ts";
import type {
  NewEvent,
  NewRun,
  RunChange,
  RunEvent,
  RunRecord,
  RunStatus,
  RunStore,
} from "../engine/types.ts";

interface RunRow {
  id: string;
  machine: string;
  resource_id: string;
  request: string;
  response: string | null;
  state: string;
  status: RunStatus;
  attempts: number;
  last_error: string | null;
  owner: string | null;
  lease_until: number | null;
  created_at: number;
  updated_at: number;
}

interface EventRow {
  seq: number;
  run_id: string;
  kind: RunEvent["kind"];
  state: string | null;
  attempt: number | null;
  data: string | null;
  at: number;
}

function toRecord(r: RunRow): RunRecord {
  return {
    id: r.id,
    machine: r.machine,
    resourceId: r.resource_id,
    request: r.request,
    response: r.response,
    state: r.state,
    status: r.status,
    attempts: r.attempts,
    lastError: r.last_error,
    owner: r.owner,
    leaseUntil: r.lease_until,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toEvent(r: EventRow): RunEvent {
  return {
    seq: r.seq,
    runId: r.run_id,
    kind: r.kind,
    state: r.state,
    attempt: r.attempt,
    data: r.data,
    at: r.at,
  };
}

/** Runs and run events in the store's `runs` and `run_events` tables. */
export class SqliteRunStore implements RunStore {
  constructor(readonly store: Store) {}

  createOrGetActive(
    run: NewRun,
    event: NewEvent,
    now: number,
  ): { run: RunRecord; created: boolean } {
    return this.store.tx(() => {
      const existing = this.store.db
        .prepare("SELECT * FROM runs WHERE machine = ? AND resource_id = ? AND status = 'active'")
        .get(run.machine, run.resourceId) as RunRow | undefined;
      if (existing) return { run: toRecord(existing), created: false };
      this.store.db.prepare(
        `INSERT INTO runs (id, machine, resource_id, request, state, status, attempts, owner,
           lease_until, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'active', 0, ?, ?, ?, ?)`,
      ).run(
        run.id,
        run.machine,
        run.resourceId,
        run.request,
        run.state,
        run.owner,
        run.leaseUntil,
        now,
        now,
      );
      this.#append(run.id, event, now);
      return { run: this.get(run.id)!, created: true };
    });
  }

  get(id: string): RunRecord | undefined {
    const row = this.store.db.prepare("SELECT * FROM runs WHERE id = ?").get(id) as
      | RunRow
      | undefined;
    return row && toRecord(row);
  }

  events(id: string): RunEvent[] {
    const rows = this.store.db
      .prepare("SELECT * FROM run_events WHERE run_id = ? ORDER BY seq")
      .all(id) as unknown as EventRow[];
    return rows.map(toEvent);
  }

  active(machine: string): RunRecord[] {
    const rows = this.store.db
      .prepare(
        "SELECT * FROM runs WHERE machine = ? AND status = 'active' ORDER BY created_at, rowid",
      )
      .all(machine) as unknown as RunRow[];
    return rows.map(toRecord);
  }

  /**
   * True when a run of one of `machines` is active on `resourceId`: one lookup, for callers
   * that answer from the rows only when no run is in flight.
   */
  hasActive(resourceId: string, machines: readonly string[]): boolean {
    return this.store.db.prepare(
      `SELECT 1 FROM runs WHERE status = 'active' AND resource_id = ? AND machine IN (${
        machines.map(() => "?").join(", ")
      }) LIMIT 1`,
    ).get(resourceId, ...machines) !== undefined;
  }

  claim(
    id: string,
    expectedOwner: string | null,
    owner: string,
    leaseUntil: number,
    event: NewEvent,
    now: number,
  ): boolean {
    return this.store.tx(() => {
      const res = this.store.db.prepare(
        `UPDATE runs SET owner = ?, lease_until = ?, updated_at = ?
         WHERE id = ? AND status = 'active' AND owner IS ?`,
      ).run(owner, leaseUntil, now, id, expectedOwner);
      if (res.changes !== 1) return false;
      this.#append(id, event, now);
      return true;
    });
  }

  renew(id: string, owner: string, leaseUntil: number, now: number): boolean {
    return this.store.tx(() => {
      const res = this.store.db.prepare(
        "UPDATE runs SET lease_until = ?, updated_at = ? WHERE id = ? AND owner = ? AND status = 'active'",
      ).run(leaseUntil, now, id, owner);
      return res.changes === 1;
    });
  }

  record(id: string, owner: string, change: RunChange, event: NewEvent, now: number): boolean {
    return this.store.tx(() => {
      const sets: string[] = ["updated_at = ?"];
      const args: (string | number | null)[] = [now];
      const put = (col: string, v: string | number | null) => {
        sets.push(`${col} = ?`);
        args.push(v);
      };
      if (change.state !== undefined) put("state", change.state);
      if (change.status !== undefined) put("status", change.status);
      if (change.response !== undefined) put("response", change.response);
      if (change.attempts !== undefined) put("attempts", change.attempts);
      if (change.lastError !== undefined) put("last_error", change.lastError);
      if (change.owner === null) {
        put("owner", null);
        put("lease_until", null);
      }
      const res = this.store.db.prepare(
        `UPDATE runs SET ${sets.join(", ")} WHERE id = ? AND owner = ? AND status = 'active'`,
      ).run(...args, id, owner);
      if (res.changes !== 1) return false;
      this.#append(id, event, now);
      return true;
    });
  }

  list(options: { resourceId?: string; limit: number }): RunRecord[] {
    const rows = (options.resourceId === undefined
      ? this.store.db
        .prepare("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?")
        .all(options.limit)
      : this.store.db
        .prepare(
          "SELECT * FROM runs WHERE resource_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
        )
        .all(options.resourceId, options.limit)) as unknown as RunRow[];
    return rows.map(toRecord);
  }

  /**
   * Forget finished runs (and, by cascade, their events) last changed before `before` (ms since
   * the epoch), except the newest `keep` finished runs of each (machine, resource). Active runs are
   * never touched. Runs are history only: what the machines made lives in the catalogue, the blob
   * store and the device records, so nothing reads an old run to decide anything. Without this,
   * a cron job pulling every minute would add some 1,500 runs a day, for good. Returns how many
   * runs went (or, with `dryRun`, would go).
   *
   * @example
   * ```ts
   * runs.prune({ before: Date.now() - 7 * 86_400_000, keep: 3 });
   * ```
   */
  prune(options: { before: number; keep: number; dryRun?: boolean }): number {
    const doomed = `SELECT id FROM (
        SELECT id, updated_at, ROW_NUMBER() OVER (
          PARTITION BY machine, resource_id ORDER BY created_at DESC, rowid DESC
        ) AS newest
        FROM runs WHERE status != 'active'
      ) WHERE updated_at < ? AND newest > ?`;
    const args = [options.before, options.keep];
    if (options.dryRun) {
      const row = this.store.db.prepare(`SELECT COUNT(*) AS n FROM (${doomed})`).get(...args) as {
        n: number;
      };
      return Number(row.n);
    }
    return this.store.tx(() =>
      Number(this.store.db.prepare(`DELETE FROM runs WHERE id IN (${doomed})`).run(...args).changes)
    );
  }

  #append(id: string, e: NewEvent, now: number): void {
    this.store.db.prepare(
      "INSERT INTO run_events (run_id, kind, state, attempt, data, at) VALUES (?, ?, ?, ?, ?, ?)",
    ).run(id, e.kind, e.state ?? null, e.attempt ?? null, e.data ?? null, now);
  }
}
