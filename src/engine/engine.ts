/**
 * The engine: starts, drives, resumes and waits for durable runs of registered machines.
 *
 * Every step of a run is written to a {@linkcode RunStore} before the engine moves on, so a
 * process may die anywhere: whoever starts the same (machine, resource) again, or calls
 * {@linkcode Engine.resumeAll}, takes the run over once its owner is gone (by pid and start
 * time on this host, or by an expired lease) and re-runs the first transition that has no
 * `complete` event. Completed transitions never run again; an interrupted one runs again and
 * is told so (`restarted`).
 *
 * @example
 * ```ts
 * import { Engine } from "./engine.ts";
 * import { machine } from "./machine.ts";
 * import type { Liveness, RunStore } from "./types.ts";
 * declare const store: RunStore; // src/store/runs.ts: new SqliteRunStore(openStore(path))
 * declare const liveness: Liveness; // src/host/process.ts: new ProcLiveness()
 * const double = machine<{ n: number }, { n: number }>("double")
 *   .start("twice", async ({ request }) => ({ n: request.n * 2 }))
 *   .end("done");
 * const engine = new Engine(store, { owner: "host:1234:5678", liveness });
 * engine.register(double);
 * const run = await engine.start(double, "n-21", { n: 21 });
 * await run.wait(); // { n: 42 }
 * ```
 * @module
 */
import { nextRetry, sleep } from "../retry.ts";
import { decodeJson, encodeJson } from "./codec.ts";
import {
  CorruptRunError,
  type ErrorInfo,
  errorInfo,
  permanent,
  PermanentError,
  RunFailedError,
  RunInterruptedError,
  TransitionTimeoutError,
  unwrapPermanent,
} from "./errors.ts";
import { newRunId } from "./id.ts";
import type { Finalizer, Machine, Transition, TransitionSpec } from "./machine.ts";
import {
  type EngineLog,
  type Liveness,
  type NewEvent,
  type RunChange,
  type RunRecord,
  type RunStore,
  SILENT_LOG,
} from "./types.ts";
import { ThinimageError } from "../errors.ts";

/** Options of an {@linkcode Engine}. */
export interface EngineOptions {
  /** This process's owner id (src/host/process.ts: `currentOwner()`). */
  owner: string;
  /** Tells whether another owner's process still runs. */
  liveness: Liveness;
  /** How long a claim holds without renewal, in ms (default 30 s); renewed every third of it. */
  leaseMs?: number;
  /** How often a waiter polls a run that another process drives, in ms (default 200). */
  pollMs?: number;
  log?: EngineLog;
  /** Clock, in ms since epoch (default `Date.now`). */
  now?: () => number;
  /** Random numbers in [0, 1) for jitter (default `Math.random`). */
  random?: () => number;
  /**
   * Called after each event is durably written, and awaited: for progress output and
   * metrics (and for tests that need to stop a process at an exact point).
   */
  onEvent?: (runId: string, event: NewEvent) => void | Promise<void>;
}

/** Options of {@linkcode Engine.start} and {@linkcode Engine.resumeAll}. */
export interface RunOptions {
  /**
   * Interrupts the run (at once for a transition that honours `ctx.signal`; otherwise at
   * the next step). The run stays active and resumable; its waiter gets a
   * {@linkcode RunInterruptedError} (exit 75).
   */
  signal?: AbortSignal;
}

/** What {@linkcode Engine.resumeAll} did. */
export interface ResumeReport {
  /** Runs taken over and now running here (wait on them). */
  resumed: RunHandle<unknown, unknown>[];
  /** Runs left alone because their owner is alive (or they already run here). */
  skipped: string[];
  /** Runs that could not be resumed, each with why (a corrupt record is marked failed). */
  failed: { runId: string; error: unknown }[];
}

type Outcome<Res> =
  | { kind: "done"; response: Res }
  | { kind: "failed"; error: RunFailedError }
  | { kind: "interrupted"; error: RunInterruptedError }
  | { kind: "lost" }
  | { kind: "crashed"; error: unknown };

/** The signals an attempt answers to: the caller's (`ext`) and the loss of the run (`lost`). */
interface AttemptSignals {
  ext?: AbortSignal;
  lost: AbortSignal;
}

/** One transition of one run, with what it is given. */
interface TransitionCall<Req, Res> {
  m: Machine<Req, Res, string, string>;
  t: TransitionSpec<Req, Res>;
  run: RunRecord;
  request: Req;
  response: Res | undefined;
}

/** A transition that ended its run: why, as stored, and the error to hand the waiter. */
type Halted = { kind: "halt"; info: ErrorInfo; error: unknown };

/** Thrown inside the driver when the run's signal aborts. */
class Interrupt {
  constructor(readonly state: string, readonly reason: unknown) {}
}
/** Thrown inside the driver when another process took the run over (our lease lapsed). */
class LostOwnership {}

// deno-lint-ignore no-explicit-any
type AnyMachine = Machine<any, any, any, any>;

/** A run: started here, taken over here, or driven by another process. */
export class RunHandle<Req, Res> {
  readonly #engine: Engine;
  /** @internal Handles come from {@linkcode Engine.start}, `resumeAll` and `handle`. */
  constructor(
    readonly id: string,
    readonly machine: Machine<Req, Res, string, string>,
    readonly resourceId: string,
    /** True when this call created the run (false: an active run was returned). */
    readonly created: boolean,
    engine: Engine,
  ) {
    this.#engine = engine;
  }

  /** True while this process drives the run. */
  get local(): boolean {
    return this.#engine.isRunningHere(this.id);
  }

  /**
   * The run's final response. Waits for another process's run by polling the store, and
   * takes the run over if that process dies. Throws {@linkcode RunFailedError} when the run
   * failed, {@linkcode RunInterruptedError} when it was interrupted here.
   */
  wait(options: { signal?: AbortSignal } = {}): Promise<Res> {
    return this.#engine.waitFor(this, options.signal);
  }

  /** The run's stored record now. */
  record(): RunRecord | undefined {
    return this.#engine.store.get(this.id);
  }
}

/** Drives runs of registered machines against a {@linkcode RunStore}. */
export class Engine {
  readonly owner: string;
  readonly #liveness: Liveness;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #log: EngineLog;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #onEvent?: (runId: string, event: NewEvent) => void | Promise<void>;
  readonly #machines = new Map<string, AnyMachine>();
  readonly #running = new Map<string, Promise<Outcome<unknown>>>();

  constructor(readonly store: RunStore, options: EngineOptions) {
    if (!options.owner) throw new TypeError("Engine: owner is empty");
    this.owner = options.owner;
    this.#liveness = options.liveness;
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollMs ?? 200;
    this.#log = options.log ?? SILENT_LOG;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#onEvent = options.onEvent;
  }

  /** Make a machine known, so that its runs can be started and resumed. */
  register(m: AnyMachine): this {
    const known = this.#machines.get(m.name);
    if (known && known !== m) throw new TypeError(`machine '${m.name}' is registered twice`);
    this.#machines.set(m.name, m);
    return this;
  }

  /** True while this process drives run `id`. */
  isRunningHere(id: string): boolean {
    return this.#running.has(id);
  }

  /**
   * Start a run of `m` for `resourceId`, or return the active one (single flight: at most one
   * active run per machine and resource). An active run whose owner is gone is taken over and
   * resumed here. A run driven by a live process is returned for waiting.
   */
  // deno-lint-ignore require-await -- async by contract: a store or liveness check may await later
  async start<Req, Res>(
    m: Machine<Req, Res, string, string>,
    resourceId: string,
    request: Req,
    options: RunOptions = {},
  ): Promise<RunHandle<Req, Res>> {
    this.#known(m);
    if (!resourceId) throw new TypeError(`${m.name}: empty resource id`);
    let encoded: string;
    try {
      encoded = encodeJson(request, "request");
    } catch (err) {
      throw new ThinimageError(`${m.name} ${resourceId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    // Twice at most: a corrupt active run is marked failed, then a fresh one starts.
    for (let round = 0;; round++) {
      const now = this.#now();
      const first = m.transitions[0].name;
      const { run, created } = this.store.createOrGetActive(
        {
          id: newRunId(now),
          machine: m.name,
          resourceId,
          request: encoded,
          state: first,
          owner: this.owner,
          leaseUntil: now + this.#leaseMs,
        },
        { kind: "start", state: first, data: encoded },
        now,
      );
      if (created) {
        this.#log.debug("run started", { run: run.id, machine: m.name, resource: resourceId });
        this.#launch(m, run, options.signal, { kind: "start", state: first, data: encoded });
        return new RunHandle(run.id, m, resourceId, true, this);
      }
      if (this.#running.has(run.id) || !this.#ownerGone(run)) {
        return new RunHandle(run.id, m, resourceId, false, this);
      }
      try {
        const taken = this.#takeOver(m, run, options.signal);
        return (taken ?? new RunHandle(run.id, m, resourceId, false, this)) as RunHandle<Req, Res>;
      } catch (err) {
        if (!(err instanceof CorruptRunError) || round > 0) throw err;
      }
    }
  }

  /** A handle on an existing run of a registered machine (to wait on it), or undefined. */
  handle(id: string): RunHandle<unknown, unknown> | undefined {
    const rec = this.store.get(id);
    const m = rec && this.#machines.get(rec.machine);
    return m && rec ? new RunHandle(id, m, rec.resourceId, false, this) : undefined;
  }

  /**
   * Take over and resume every active run of the registered machines whose owner is gone.
   * Each run is handled on its own: one that cannot be read is marked failed and reported,
   * and the others still resume. Does not wait for the resumed runs to finish.
   */
  // deno-lint-ignore require-await -- async by contract, as start()
  async resumeAll(options: RunOptions = {}): Promise<ResumeReport> {
    const report: ResumeReport = { resumed: [], skipped: [], failed: [] };
    for (const m of this.#machines.values()) {
      let runs: RunRecord[];
      try {
        runs = this.store.active(m.name);
      } catch (err) {
        this.#log.error("cannot list active runs", { machine: m.name, error: String(err) });
        report.failed.push({ runId: `(${m.name})`, error: err });
        continue;
      }
      for (const run of runs) {
        try {
          if (this.#running.has(run.id) || !this.#ownerGone(run)) {
            report.skipped.push(run.id);
            continue;
          }
          const h = this.#takeOver(m, run, options.signal);
          if (h) report.resumed.push(h as RunHandle<unknown, unknown>);
          else report.skipped.push(run.id);
        } catch (err) {
          this.#log.error("cannot resume run", { run: run.id, error: String(err) });
          report.failed.push({ runId: run.id, error: err });
        }
      }
    }
    return report;
  }

  /** @internal See {@linkcode RunHandle.wait}. */
  async waitFor<Req, Res>(h: RunHandle<Req, Res>, signal?: AbortSignal): Promise<Res> {
    for (;;) {
      const local = this.#running.get(h.id) as Promise<Outcome<Res>> | undefined;
      if (local) {
        const o = await local;
        if (o.kind === "done") return o.response;
        if (o.kind === "failed" || o.kind === "interrupted" || o.kind === "crashed") throw o.error;
        // lost: another process took over; follow it through the store.
      }
      const rec = this.store.get(h.id);
      if (!rec) throw new ThinimageError(`run ${h.id} does not exist`);
      if (rec.status === "done") return decodeJson<Res>(rec.response ?? "null");
      if (rec.status !== "active") throw failedError(rec);
      if (this.#running.has(h.id)) continue;
      if (this.#ownerGone(rec)) {
        const m = this.#machines.get(rec.machine);
        if (m && (this.#takeOver(m, rec, signal))) continue;
      }
      await sleep(this.#pollMs, signal);
    }
  }

  #known(m: AnyMachine): void {
    if (this.#machines.get(m.name) !== m) {
      throw new TypeError(`machine '${m.name}' is not registered with this engine`);
    }
  }

  /** Gone: nobody holds it, its process is dead, or (when liveness cannot tell) its lease lapsed. */
  #ownerGone(run: RunRecord): boolean {
    if (run.owner === null) return true;
    if (run.owner === this.owner) return !this.#running.has(run.id);
    const status = this.#liveness.status(run.owner);
    if (status !== "unknown") return status === "dead";
    return run.leaseUntil !== null && run.leaseUntil < this.#now();
  }

  /**
   * Claim `run` from its gone owner and drive it here. Undefined when another process
   * claimed it first. A record that does not fit its machine is marked failed and thrown.
   */
  #takeOver<Req, Res>(
    m: Machine<Req, Res, string, string>,
    run: RunRecord,
    signal?: AbortSignal,
  ): RunHandle<Req, Res> | undefined {
    const now = this.#now();
    const event: NewEvent = {
      kind: "resume",
      state: run.state,
      data: JSON.stringify({ previousOwner: run.owner, owner: this.owner }),
    };
    if (!this.store.claim(run.id, run.owner, this.owner, now + this.#leaseMs, event, now)) {
      return undefined;
    }
    const fresh = this.store.get(run.id);
    if (!fresh) return undefined;
    try {
      load(m, fresh, this.store.events(run.id));
    } catch (err) {
      const corrupt = err instanceof CorruptRunError
        ? err
        : new CorruptRunError(run.id, String(err));
      const info = JSON.stringify(errorInfo(corrupt));
      const ok = this.store.record(
        run.id,
        this.owner,
        { lastError: info },
        { kind: "abort", state: fresh.state, data: info },
        this.#now(),
      ) && this.store.record(
        run.id,
        this.owner,
        { status: "failed", owner: null },
        { kind: "finish", state: fresh.state, data: JSON.stringify({ status: "failed" }) },
        this.#now(),
      );
      if (!ok) this.#log.warn("lost a corrupt run while marking it failed", { run: run.id });
      throw corrupt;
    }
    this.#log.info("resuming run", { run: run.id, machine: m.name, state: fresh.state });
    this.#launch(m, fresh, signal, event);
    return new RunHandle(run.id, m, run.resourceId, false, this);
  }

  #launch(m: AnyMachine, run: RunRecord, signal: AbortSignal | undefined, first: NewEvent): void {
    const p = this.#drive(m, run, signal, first).finally(() => this.#running.delete(run.id));
    this.#running.set(run.id, p);
  }

  /**
   * Drive a run claimed here: keep its lease, run the transitions not yet completed in order,
   * then finish it; or, when it stops short, say why (`#stopped`).
   */
  async #drive<Req, Res>(
    m: Machine<Req, Res, string, string>,
    run: RunRecord,
    ext: AbortSignal | undefined,
    first: NewEvent,
  ): Promise<Outcome<Res>> {
    const lost = new AbortController();
    const renewer = this.#keepLease(run.id, lost);
    let state = run.state;
    try {
      await this.#notify(run.id, first);
      const loaded = load(m, run, this.store.events(run.id));
      let response = loaded.response;
      let halt = loaded.halted;
      if (!halt) {
        for (const t of m.transitions) {
          if (loaded.completed.has(t.name)) continue;
          state = t.name;
          const prior = run.state === t.name ? run.attempts : 0;
          const call = { m, t, run, request: loaded.request, response };
          const r = await this.#transition(call, prior, {
            restarted: loaded.begun.has(t.name),
            ext,
            lost: lost.signal,
          });
          if (r.kind === "halt") {
            halt = { state: t.name, info: r.info, cause: r.error };
            break;
          }
          response = r.response;
        }
      }
      return await this.#finish(m, run, loaded.request, response, halt);
    } catch (err) {
      return this.#stopped(run.id, state, err, lost.signal);
    } finally {
      clearInterval(renewer);
    }
  }

  /**
   * Renew this owner's lease on run `id` every third of the lease until the interval is cleared;
   * abort `lost` once another process holds the run.
   */
  #keepLease(id: string, lost: AbortController): ReturnType<typeof setInterval> {
    return setInterval(() => {
      try {
        const now = this.#now();
        if (!this.store.renew(id, this.owner, now + this.#leaseMs, now)) {
          lost.abort(new LostOwnership());
        }
      } catch (err) {
        this.#log.warn("cannot renew lease", { run: id, error: String(err) });
      }
    }, Math.max(10, Math.floor(this.#leaseMs / 3)));
  }

  /**
   * What became of a run that stopped short of its end at `state`: another process took it over
   * (nothing to write: it is theirs); its signal interrupted it (recorded and let go, resumable);
   * or the engine failed (let go too, so that it can resume without waiting for this process).
   */
  #stopped(id: string, state: string, err: unknown, lost: AbortSignal): Outcome<never> {
    if (err instanceof LostOwnership || lost.aborted) {
      this.#log.warn("run taken over by another process", { run: id });
      return { kind: "lost" };
    }
    if (err instanceof Interrupt) {
      const reason = err.reason instanceof Error ? err.reason.message : String(err.reason);
      try {
        this.store.record(
          id,
          this.owner,
          { owner: null },
          { kind: "cancel", state: err.state, data: JSON.stringify({ reason }) },
          this.#now(),
        );
      } catch (e) {
        this.#log.warn("cannot record the interruption", { run: id, error: String(e) });
      }
      return { kind: "interrupted", error: new RunInterruptedError(id, err.state, err.reason) };
    }
    this.#log.error("run stopped by an engine error", { run: id, state, error: String(err) });
    try {
      this.store.record(
        id,
        this.owner,
        { owner: null },
        { kind: "cancel", state, data: JSON.stringify({ reason: `engine error: ${err}` }) },
        this.#now(),
      );
    } catch { /* the store itself is failing: the owner lock's release at exit frees it */ }
    return { kind: "crashed", error: err };
  }

  /**
   * Run transition `t` until it completes or halts: each attempt is recorded before it begins
   * (so attempts cut short by a crash count too), and each failure is recorded, then either
   * halts the run or waits out its backoff.
   */
  async #transition<Req, Res>(
    call: TransitionCall<Req, Res>,
    prior: number,
    opts: AttemptSignals & { restarted: boolean },
  ): Promise<{ kind: "complete"; response: Res } | Halted> {
    const { t, run } = call;
    let restarted = opts.restarted;
    const firstAt = this.#now();
    for (let attempt = prior + 1;; attempt++) {
      if (opts.lost.aborted) throw new LostOwnership();
      if (opts.ext?.aborted) throw new Interrupt(t.name, opts.ext.reason);
      if (attempt > t.retry.maxAttempts) {
        // Every allowed attempt began in processes that died: a transition that kills its
        // process would otherwise crash-loop forever.
        const message = `gave up after ${prior} attempts, the last cut short by a crash`;
        return {
          kind: "halt",
          info: { name: "Error", message, exitCode: 1 },
          error: new Error(message),
        };
      }
      await this.#record(run.id, { state: t.name, attempts: attempt }, {
        kind: "begin",
        state: t.name,
        attempt,
        data: restarted ? JSON.stringify({ restarted: true }) : undefined,
      });
      try {
        const result = await this.#attempt(call, attempt, restarted, opts);
        return { kind: "complete", response: result };
      } catch (err) {
        if (err instanceof LostOwnership || opts.lost.aborted) throw new LostOwnership();
        if (opts.ext?.aborted) throw new Interrupt(t.name, opts.ext.reason);
        const halted = await this.#failed(call, attempt, firstAt, err, opts);
        if (halted) return halted;
        restarted = false;
      }
    }
  }

  /**
   * One attempt at `t`: the transition runs with a signal that aborts on its timeout, on lost
   * ownership and on the caller's signal (a transition that ignores it is abandoned, not
   * awaited); its response is encoded and recorded as the transition's completion.
   */
  async #attempt<Req, Res>(
    { m, t, run, request, response }: TransitionCall<Req, Res>,
    attempt: number,
    restarted: boolean,
    opts: AttemptSignals,
  ): Promise<Res> {
    const timeout = new AbortController();
    const signal = AbortSignal.any(
      opts.ext ? [timeout.signal, opts.lost, opts.ext] : [timeout.signal, opts.lost],
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const result = await new Promise<Res>((resolve, reject) => {
        if (t.timeoutMs !== undefined) {
          const ms = t.timeoutMs;
          timer = setTimeout(() => timeout.abort(new TransitionTimeoutError(t.name, ms)), ms);
        }
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        Promise.resolve()
          .then(() =>
            (t.fn as Transition<Req, Res, string>)({
              request,
              response,
              runId: run.id,
              machine: m.name,
              resourceId: run.resourceId,
              state: t.name,
              attempt,
              restarted,
              signal,
              log: this.#log,
            })
          )
          .then(resolve, reject);
      });
      let encoded: string;
      try {
        encoded = encodeJson(result, `response of '${t.name}'`);
      } catch (err) {
        throw permanent(err);
      }
      await this.#record(run.id, { response: encoded, lastError: null }, {
        kind: "complete",
        state: t.name,
        attempt,
        data: encoded,
      });
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Record attempt `attempt`'s failure, then decide: a permanent error (the error's own
   * answer, or the machine's `isPermanent`; never a timeout) or a retry the policy refuses
   * halts the run; otherwise the retry is recorded and its backoff waited out (undefined).
   */
  async #failed<Req, Res>(
    { m, t, run }: TransitionCall<Req, Res>,
    attempt: number,
    firstAt: number,
    err: unknown,
    opts: AttemptSignals,
  ): Promise<Halted | undefined> {
    const timedOut = err instanceof TransitionTimeoutError;
    const isPermanent = err instanceof PermanentError || (!timedOut && m.isPermanent(err));
    const info = errorInfo(err);
    await this.#record(run.id, { lastError: JSON.stringify(info) }, {
      kind: "error",
      state: t.name,
      attempt,
      data: JSON.stringify({ ...info, permanent: isPermanent, timedOut }),
    });
    this.#log.debug("transition failed", {
      run: run.id,
      state: t.name,
      attempt,
      error: info.message,
    });
    if (isPermanent) return { kind: "halt", info, error: unwrapPermanent(err) };
    const next = nextRetry(attempt, this.#now() - firstAt, t.retry, this.#random);
    if ("giveUp" in next) {
      return {
        kind: "halt",
        info: { ...info, message: `${next.giveUp}: ${info.message}` },
        error: err,
      };
    }
    await this.#record(run.id, {}, {
      kind: "retry",
      state: t.name,
      attempt,
      data: JSON.stringify({ delayMs: next.delayMs }),
    });
    try {
      await sleep(next.delayMs, opts.ext ? AbortSignal.any([opts.ext, opts.lost]) : opts.lost);
    } catch {
      if (opts.lost.aborted) throw new LostOwnership();
      throw new Interrupt(t.name, opts.ext?.reason);
    }
    return undefined;
  }

  /** Write the halt (if any), run the finalizers, then the final status. */
  async #finish<Req, Res>(
    m: Machine<Req, Res, string, string>,
    run: RunRecord,
    request: Req,
    response: Res | undefined,
    halt: Halt | undefined,
  ): Promise<Outcome<Res>> {
    let error: RunFailedError | undefined;
    if (halt) {
      error = new RunFailedError(run.id, halt.state, halt.info, halt.cause, {
        machine: run.machine,
        resource: run.resourceId,
      });
      if (!halt.recorded) {
        const info = JSON.stringify(halt.info);
        await this.#record(run.id, { lastError: info }, {
          kind: "abort",
          state: halt.state,
          data: info,
        });
      }
    }
    const status = halt ? "failed" : "done";
    const state = halt ? halt.state : m.endState;
    for (const [i, f] of m.finalizers.entries()) {
      try {
        await (f as Finalizer<Req, Res, string>)({
          request,
          response,
          runId: run.id,
          machine: m.name,
          resourceId: run.resourceId,
          status,
          state,
          error: halt ? halt.cause ?? error : undefined,
          log: this.#log,
        });
      } catch (err) {
        this.#log.warn("finalizer failed", { run: run.id, finalizer: i, error: String(err) });
        await this.#record(run.id, {}, {
          kind: "finalizer_error",
          state,
          data: JSON.stringify({ finalizer: i, ...errorInfo(err) }),
        });
      }
    }
    await this.#record(run.id, { status, state, owner: null }, {
      kind: "finish",
      state,
      data: JSON.stringify({ status }),
    });
    this.#log.debug("run finished", { run: run.id, status, state });
    return error ? { kind: "failed", error } : { kind: "done", response: response as Res };
  }

  async #record(id: string, change: RunChange, event: NewEvent): Promise<void> {
    if (!this.store.record(id, this.owner, change, event, this.#now())) throw new LostOwnership();
    await this.#notify(id, event);
  }

  async #notify(id: string, event: NewEvent): Promise<void> {
    try {
      await this.#onEvent?.(id, event);
    } catch (err) {
      // An observer (progress, metrics) must not change what the run does.
      this.#log.warn("onEvent hook failed", { run: id, event: event.kind, error: String(err) });
    }
  }
}

interface Halt {
  state: string;
  info: ErrorInfo;
  cause?: unknown;
  /** The abort event is already in the log (a halted run resumed to finalize). */
  recorded?: boolean;
}

/** Decode a run for its machine from its own events only: another run's are not its history. */
function load<Req, Res>(
  m: Machine<Req, Res, string, string>,
  run: RunRecord,
  events: readonly {
    kind: string;
    state: string | null;
    data: string | null;
  }[],
) {
  const fail = (why: string) => new CorruptRunError(run.id, why);
  if (run.machine !== m.name) throw fail(`belongs to machine '${run.machine}', not '${m.name}'`);
  const names = new Set(m.transitions.map((t) => t.name));
  if (run.state !== m.endState && !names.has(run.state)) {
    throw fail(`state '${run.state}' is not a state of machine '${m.name}'`);
  }
  let request: Req;
  let response: Res | undefined;
  try {
    request = decodeJson<Req>(run.request);
  } catch (err) {
    throw fail(`request is not valid JSON (${(err as Error).message})`);
  }
  try {
    response = run.response === null ? undefined : decodeJson<Res>(run.response);
  } catch (err) {
    throw fail(`response is not valid JSON (${(err as Error).message})`);
  }
  const completed = new Set<string>();
  const begun = new Set<string>();
  let halted: Halt | undefined;
  for (const ev of events) {
    if (ev.state !== null && !names.has(ev.state) && ev.state !== m.endState) {
      throw fail(`event '${ev.kind}' names unknown state '${ev.state}'`);
    }
    // `begun` ends up holding the transitions whose last attempt began and never ended.
    if (ev.kind === "complete") {
      completed.add(ev.state!);
      begun.delete(ev.state!);
    } else if (ev.kind === "begin") begun.add(ev.state!);
    else if (ev.kind === "error") begun.delete(ev.state!);
    else if (ev.kind === "abort") {
      let info: ErrorInfo;
      try {
        info = decodeJson<ErrorInfo>(ev.data ?? "");
      } catch {
        throw fail("its abort event is not valid JSON");
      }
      halted = { state: ev.state!, info, recorded: true };
    }
  }
  return { request, response, completed, begun, halted };
}

function failedError(run: RunRecord): RunFailedError {
  let info: ErrorInfo = { name: "Error", message: "failed (no error recorded)", exitCode: 1 };
  try {
    if (run.lastError) info = decodeJson<ErrorInfo>(run.lastError);
  } catch {
    info = { name: "Error", message: run.lastError ?? "", exitCode: 1 };
  }
  return new RunFailedError(run.id, run.state, info, undefined, {
    machine: run.machine,
    resource: run.resourceId,
  });
}
