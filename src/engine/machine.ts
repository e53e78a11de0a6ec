/**
 * The typed builder of state machines: a linear pipeline of named transitions, each handing
 * a typed response to the next, ending in a terminal state whose finalizers always run.
 *
 * @example
 * ```ts
 * import { machine } from "./machine.ts";
 * interface PullReq { image: string }
 * interface PullRes { layers: number; fetched: number }
 * const pull = machine<PullReq, PullRes>("pull")
 *   .start("resolve", async ({ request }) => ({ layers: request.image.length, fetched: 0 }))
 *   .to("fetch", async ({ response }) => ({ ...response!, fetched: response!.layers }), {
 *     timeoutMs: 60_000,
 *   })
 *   .end("ready", { finalizers: [async ({ status }) => console.log("pull", status)] });
 * ```
 * @module
 */
import { checkPolicy, DEFAULT_RETRY, type RetryPolicy } from "../retry.ts";
import { isPermanentByDefault } from "./errors.ts";
import type { EngineLog } from "./types.ts";

/** What a transition is given. */
export interface TransitionContext<Req, Res, S extends string = string> {
  /** The request the run was started with. */
  readonly request: Req;
  /** The latest response (of the last completed transition), undefined before the first. */
  readonly response: Res | undefined;
  readonly runId: string;
  readonly machine: string;
  readonly resourceId: string;
  /** The transition running. */
  readonly state: S;
  /** 1-based, counted across processes: attempts made at this transition so far, this one included. */
  readonly attempt: number;
  /**
   * True when an earlier attempt at this transition began and never finished (its process
   * died, or the run was interrupted): side effects of that attempt may exist.
   */
  readonly restarted: boolean;
  /** Aborted on cancellation, on timeout, and when the run is taken over elsewhere. */
  readonly signal: AbortSignal;
  readonly log: EngineLog;
}

/** A transition: returns the run's new response. Must be idempotent (it may run again). */
export type Transition<Req, Res, S extends string = string> = (
  ctx: TransitionContext<Req, Res, S>,
) => Promise<Res>;

/** What a finalizer is given: how the run ended and where it stopped. */
export interface FinalizerContext<Req, Res, S extends string = string> {
  readonly request: Req;
  readonly response: Res | undefined;
  readonly runId: string;
  readonly machine: string;
  readonly resourceId: string;
  /** `done`, or `failed` when a transition's error halted the run. */
  readonly status: "done" | "failed";
  /** The end state when done; otherwise the transition where the run stopped. */
  readonly state: S;
  /** The error that halted the run (undefined when done). */
  readonly error?: unknown;
  readonly log: EngineLog;
}

/** A finalizer: runs once the run ends, successfully or not (at least once). */
export type Finalizer<Req, Res, S extends string = string> = (
  ctx: FinalizerContext<Req, Res, S>,
) => Promise<void> | void;

/** Options of one transition (overriding the machine's). */
export interface TransitionOptions {
  retry?: Partial<RetryPolicy>;
  /** Abort an attempt after this many ms (it counts as a retryable failure). */
  timeoutMs?: number;
}

/** Options of a machine. */
export interface MachineOptions extends TransitionOptions {
  /** Which errors halt at once (default {@linkcode isPermanentByDefault}). */
  isPermanent?: (err: unknown) => boolean;
}

/**
 * One built transition. Its function is typed for its own state name only; `never` here
 * lets machines with different state names share one type (the engine passes the right name).
 */
export interface TransitionSpec<Req, Res> {
  readonly name: string;
  readonly fn: Transition<Req, Res, never>;
  readonly retry: RetryPolicy;
  readonly timeoutMs?: number;
}

/**
 * A built machine: register it with an engine, then start runs of it. `S` are its transition
 * states and `E` its end state (string literal types).
 */
export interface Machine<Req, Res, S extends string = string, E extends string = string> {
  readonly name: string;
  /** Transition states, in order. */
  readonly states: readonly S[];
  readonly transitions: readonly TransitionSpec<Req, Res>[];
  readonly endState: E;
  readonly finalizers: readonly Finalizer<Req, Res, never>[];
  readonly isPermanent: (err: unknown) => boolean;
}

/** The builder after `start`: more transitions, then `end`. */
export interface MachineBuilder<Req, Res, S extends string> {
  /** Add the next transition. Its name must be new. */
  to<S2 extends string>(
    state: S2 extends S ? never : S2,
    fn: Transition<Req, Res, S2>,
    options?: TransitionOptions,
  ): MachineBuilder<Req, Res, S | S2>;
  /** Name the terminal state and build the machine. */
  end<E extends string>(
    state: E extends S ? never : E,
    options?: { finalizers?: Finalizer<Req, Res, S | E>[] },
  ): Machine<Req, Res, S, E>;
}

/** Start describing a machine named `name` (unique per engine; stored with each run). */
export function machine<Req, Res>(
  name: string,
  options: MachineOptions = {},
): {
  start<S extends string>(
    state: S,
    fn: Transition<Req, Res, S>,
    options?: TransitionOptions,
  ): MachineBuilder<Req, Res, S>;
} {
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) {
    throw new TypeError(`machine name '${name}' must be lowercase letters, digits, '-' or '_'`);
  }
  const specs: TransitionSpec<Req, Res>[] = [];
  const add = (state: string, fn: Transition<Req, Res, never>, opts: TransitionOptions = {}) => {
    if (!state) throw new TypeError(`machine ${name}: empty state name`);
    if (specs.some((s) => s.name === state)) {
      throw new TypeError(`machine ${name}: state '${state}' appears twice`);
    }
    const retry = checkPolicy(
      { ...DEFAULT_RETRY, ...options.retry, ...opts.retry },
      `machine ${name}, state ${state}`,
    );
    const timeoutMs = opts.timeoutMs ?? options.timeoutMs;
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      throw new RangeError(`machine ${name}, state ${state}: timeoutMs must be positive`);
    }
    specs.push({ name: state, fn, retry, timeoutMs });
  };
  // The builder is untyped inside; the interfaces above give callers the precise types.
  // deno-lint-ignore no-explicit-any
  const builder: any = {
    to(state: string, fn: Transition<Req, Res, never>, opts?: TransitionOptions) {
      add(state, fn, opts);
      return builder;
    },
    end(state: string, opts: { finalizers?: Finalizer<Req, Res, never>[] } = {}) {
      if (specs.some((s) => s.name === state)) {
        throw new TypeError(`machine ${name}: end state '${state}' is also a transition`);
      }
      return Object.freeze({
        name,
        states: Object.freeze(specs.map((t) => t.name)),
        transitions: Object.freeze([...specs]),
        endState: state,
        finalizers: Object.freeze([...(opts.finalizers ?? [])]),
        isPermanent: options.isPermanent ?? isPermanentByDefault,
      });
    },
  };
  return {
    start(state, fn, opts) {
      add(state, fn as Transition<Req, Res, never>, opts);
      return builder;
    },
  };
}

/** Request type of a machine. */
// deno-lint-ignore no-explicit-any
export type RequestOf<M> = M extends Machine<infer Req, any, any, any> ? Req : never;
/** Response type of a machine. */
// deno-lint-ignore no-explicit-any
export type ResponseOf<M> = M extends Machine<any, infer Res, any, any> ? Res : never;
