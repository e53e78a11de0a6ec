/**
 * A {@linkcode RunStore} in memory, with the semantics of SQLite's (`src/store/runs.ts`):
 * single flight per (machine, resource id) among active runs, changes fenced by owner, a claim
 * that is compare-and-set on the previous owner, and a change written with its event in one step.
 * It is pure (no I/O) and lives as long as its process, so it keeps nothing across a crash: it is
 * for tests of the engine and the machines that are about decisions, not durability.
 * `tests/engine/run_store_test.ts` runs one contract against both stores.
 *
 * @example
 * ```ts
 * import { Engine } from "./engine.ts";
 * import { MemoryRunStore } from "./memory_store.ts";
 * const engine = new Engine(new MemoryRunStore(), {
 *   owner: "test/0/1/1",
 *   liveness: { status: () => "alive" },
 * });
 * ```
 * @module
 */
import type { NewEvent, NewRun, RunChange, RunEvent, RunRecord, RunStore } from "./types.ts";

/** Runs and their events in maps; every record handed out is a copy. */
export class MemoryRunStore implements RunStore {
  /** In insertion order, which breaks ties of `createdAt` as SQLite's rowid does. */
  readonly #runs = new Map<string, RunRecord>();
  readonly #events = new Map<string, RunEvent[]>();
  #seq = 0;

  createOrGetActive(
    run: NewRun,
    event: NewEvent,
    now: number,
  ): { run: RunRecord; created: boolean } {
    const existing = [...this.#runs.values()].find((r) =>
      r.status === "active" && r.machine === run.machine && r.resourceId === run.resourceId
    );
    if (existing) return { run: { ...existing }, created: false };
    if (this.#runs.has(run.id)) throw new Error(`run ${run.id} exists already`);
    this.#runs.set(run.id, {
      id: run.id,
      machine: run.machine,
      resourceId: run.resourceId,
      request: run.request,
      response: null,
      state: run.state,
      status: "active",
      attempts: 0,
      lastError: null,
      owner: run.owner,
      leaseUntil: run.leaseUntil,
      createdAt: now,
      updatedAt: now,
    });
    this.#append(run.id, event, now);
    return { run: this.get(run.id)!, created: true };
  }

  get(id: string): RunRecord | undefined {
    const r = this.#runs.get(id);
    return r && { ...r };
  }

  events(id: string): RunEvent[] {
    return (this.#events.get(id) ?? []).map((e) => ({ ...e }));
  }

  active(machine: string): RunRecord[] {
    return [...this.#runs.values()]
      .filter((r) => r.machine === machine && r.status === "active")
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((r) => ({ ...r }));
  }

  claim(
    id: string,
    expectedOwner: string | null,
    owner: string,
    leaseUntil: number,
    event: NewEvent,
    now: number,
  ): boolean {
    const r = this.#runs.get(id);
    if (!r || r.status !== "active" || r.owner !== expectedOwner) return false;
    Object.assign(r, { owner, leaseUntil, updatedAt: now });
    this.#append(id, event, now);
    return true;
  }

  renew(id: string, owner: string, leaseUntil: number, now: number): boolean {
    const r = this.#held(id, owner);
    if (!r) return false;
    Object.assign(r, { leaseUntil, updatedAt: now });
    return true;
  }

  record(id: string, owner: string, change: RunChange, event: NewEvent, now: number): boolean {
    const r = this.#held(id, owner);
    if (!r) return false;
    const next: RunRecord = { ...r, updatedAt: now };
    if (change.state !== undefined) next.state = change.state;
    if (change.status !== undefined) next.status = change.status;
    if (change.response !== undefined) next.response = change.response;
    if (change.attempts !== undefined) next.attempts = change.attempts;
    if (change.lastError !== undefined) next.lastError = change.lastError;
    if (change.owner === null) {
      next.owner = null;
      next.leaseUntil = null;
    }
    // The checks of SQLite's table: a refused change leaves the run and its events as they were.
    if (next.attempts < 0) throw new RangeError(`run ${id}: attempts ${next.attempts} < 0`);
    if (next.status !== "active" && next.owner !== null) {
      throw new RangeError(`run ${id}: a ${next.status} run still has an owner`);
    }
    this.#runs.set(id, next);
    this.#append(id, event, now);
    return true;
  }

  list(options: { resourceId?: string; limit: number }): RunRecord[] {
    return [...this.#runs.values()]
      .filter((r) => options.resourceId === undefined || r.resourceId === options.resourceId)
      .reverse() // newest inserted first among equal createdAt; sort is stable
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, options.limit)
      .map((r) => ({ ...r }));
  }

  /** The run, when it is active and `owner` holds it: what fences every owner's change. */
  #held(id: string, owner: string): RunRecord | undefined {
    const r = this.#runs.get(id);
    return r && r.status === "active" && r.owner === owner ? r : undefined;
  }

  #append(id: string, e: NewEvent, now: number): void {
    const events = this.#events.get(id) ?? [];
    events.push({
      seq: ++this.#seq,
      runId: id,
      kind: e.kind,
      state: e.state ?? null,
      attempt: e.attempt ?? null,
      data: e.data ?? null,
      at: now,
    });
    this.#events.set(id, events);
  }
}
