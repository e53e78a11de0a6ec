/**
 * The engine's view of its durable storage and of other processes: the {@linkcode RunStore}
 * and {@linkcode Liveness} interfaces, and the records they exchange. The engine depends only
 * on these; `src/store/runs.ts` implements the store in SQLite (`./memory_store.ts` in memory,
 * for tests) and `src/host/process.ts` the liveness check from `/proc`.
 *
 * @example
 * ```ts
 * import type { Liveness } from "./types.ts";
 * // Tests inject liveness; production reads /proc (src/host/process.ts).
 * const everyoneElseIsDead: Liveness = { status: () => "dead" };
 * ```
 * @module
 */
import type { Log } from "../log.ts";

/**
 * Where a run is in its life: `active` until it finishes, `done` with its response, or
 * `failed` (a permanent error, or retries used up). The schema allows these three only.
 */
export type RunStatus = "active" | "done" | "failed";

/**
 * What an event records. `start`: the run was created; `resume`: a process took over a run
 * whose owner had died or let go; `begin`: an attempt at a transition began; `complete`: a
 * transition returned (with its response); `error`: an attempt failed; `retry`: the engine
 * will try again after a delay; `abort`: the run halted (permanent error, retries used up);
 * `cancel`: the run was interrupted by its AbortSignal and stays resumable;
 * `finalizer_error`: a finalizer threw; `finish`: the run reached its final status.
 */
export type EventKind =
  | "start"
  | "resume"
  | "begin"
  | "complete"
  | "error"
  | "retry"
  | "abort"
  | "cancel"
  | "finalizer_error"
  | "finish";

/** A run as stored. `request`, `response` and `lastError` are encoded (JSON text). */
export interface RunRecord {
  id: string;
  machine: string;
  resourceId: string;
  request: string;
  response: string | null;
  /** The transition being worked on, or the end state once done. */
  state: string;
  status: RunStatus;
  /** Attempts made at the transition named by `state`. */
  attempts: number;
  lastError: string | null;
  /** The process that runs it; null when nobody does (interrupted, or finished). */
  owner: string | null;
  /** Until when (ms since epoch) the owner's claim holds without being renewed. */
  leaseUntil: number | null;
  createdAt: number;
  updatedAt: number;
}

/** An event of a run's append-only log, as stored. `data` is JSON text. */
export interface RunEvent {
  seq: number;
  runId: string;
  kind: EventKind;
  state: string | null;
  attempt: number | null;
  data: string | null;
  at: number;
}

/** An event to append: the store adds `seq`, `runId` and `at`. */
export interface NewEvent {
  kind: EventKind;
  state?: string;
  attempt?: number;
  data?: string;
}

/** A run to create. */
export interface NewRun {
  id: string;
  machine: string;
  resourceId: string;
  request: string;
  state: string;
  owner: string;
  leaseUntil: number;
}

/** Fields of a run to change together with an event. `owner: null` lets go of the run. */
export interface RunChange {
  state?: string;
  status?: RunStatus;
  response?: string;
  attempts?: number;
  lastError?: string | null;
  owner?: null;
}

/**
 * Durable storage of runs and their events. Every method is atomic on its own: a change and
 * its event are written together or not at all. Methods that take `owner` change the run only
 * while `owner` still holds it (fencing), and return false otherwise.
 */
export interface RunStore {
  /**
   * Create `run` with `event`, unless an active run of the same (machine, resource id)
   * exists: then return that one (single flight).
   */
  createOrGetActive(
    run: NewRun,
    event: NewEvent,
    now: number,
  ): { run: RunRecord; created: boolean };
  /** The run with this id. */
  get(id: string): RunRecord | undefined;
  /** A run's events, oldest first. */
  events(id: string): RunEvent[];
  /**
   * Active runs of one machine, oldest first; never another machine's, though resource ids
   * may coincide (an activation is named after its image by default).
   */
  active(machine: string): RunRecord[];
  /**
   * Take the run over when its owner is still `expectedOwner` (compare-and-set) and it is
   * active, writing `event`; false when someone else got there first.
   */
  claim(
    id: string,
    expectedOwner: string | null,
    owner: string,
    leaseUntil: number,
    event: NewEvent,
    now: number,
  ): boolean;
  /** Extend `owner`'s lease; false when `owner` no longer holds the run. */
  renew(id: string, owner: string, leaseUntil: number, now: number): boolean;
  /** Apply `change` and append `event` in one transaction, if `owner` holds the run. */
  record(id: string, owner: string, change: RunChange, event: NewEvent, now: number): boolean;
  /** Most recent runs first; of one resource when `resourceId` is given. */
  list(options: { resourceId?: string; limit: number }): RunRecord[];
}

/**
 * Whether the process named by an owner id is running. `unknown` when this host cannot tell
 * (another host): the engine then relies on the owner's lease.
 */
export interface Liveness {
  status(owner: string): "alive" | "dead" | "unknown";
}

/** Where the engine writes what it does (any {@linkcode Log}, such as the CLI's Logger). */
export type EngineLog = Log;

/** A log that drops everything. */
export const SILENT_LOG: EngineLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
