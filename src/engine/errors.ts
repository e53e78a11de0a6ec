/**
 * How transitions tell the engine an error is final, and the errors a run's waiter sees.
 *
 * @example
 * ```ts
 * import { permanent } from "./errors.ts";
 * // inside a transition: a 404 will not turn into a 200 by retrying
 * throw permanent(new Error("images/alpine/1.tar: no such key"));
 * ```
 * @module
 */
import { ExitCode, exitCodeOf, TemporaryError, ThinimageError } from "../errors.ts";

/** Thrown by a transition to halt its run at once, without retrying. Wraps the real error. */
export class PermanentError extends Error {
  constructor(readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error), { cause: error });
    this.name = "PermanentError";
  }
}

/** Mark `err` as permanent: the run halts at once and its finalizers run. */
export function permanent(err: unknown): PermanentError {
  return err instanceof PermanentError ? err : new PermanentError(err);
}

/** The error behind a {@linkcode PermanentError}, or the error itself. */
export function unwrapPermanent(err: unknown): unknown {
  return err instanceof PermanentError ? err.error : err;
}

/**
 * The default split: {@linkcode PermanentError}, and a {@linkcode ThinimageError} that says
 * it is `permanent` (invalid input, usage, an unreachable source, a temporary refusal, a
 * conflict), halt the run; everything else (a busy device, a plain Error) may pass and is
 * retried.
 */
export function isPermanentByDefault(err: unknown): boolean {
  // A permission Deno refused stays refused for the life of the process.
  return err instanceof PermanentError || err instanceof Deno.errors.NotCapable ||
    (err instanceof ThinimageError && err.permanent);
}

/** A transition ran longer than its `timeoutMs` (retryable). */
export class TransitionTimeoutError extends Error {
  constructor(readonly state: string, readonly timeoutMs: number) {
    super(`transition '${state}' timed out after ${timeoutMs} ms`);
    this.name = "TransitionTimeoutError";
  }
}

/** One run an error passed through on its way out: which machine, resource and state. */
export interface RunLink {
  runId: string;
  machine?: string;
  resource?: string;
  state: string;
}

/** An error as stored in a run: enough to rebuild a useful error in another process. */
export interface ErrorInfo {
  name: string;
  /** The cause, in the words of the error that started it (no run ids in front). */
  message: string;
  exitCode: ExitCode;
  /** The cause's structured details ({@linkcode ThinimageError.details}), when it had any. */
  details?: Record<string, unknown>;
  /** The child runs it came through, outermost first, when it came from a child run. */
  runs?: RunLink[];
}

/**
 * Describe an error for storage. An error that a child run failed with keeps its cause as
 * the message and adds the child to `runs`: the cause stays first however deep it came from.
 */
export function errorInfo(err: unknown): ErrorInfo {
  const inner = unwrapPermanent(err);
  if (inner instanceof RunFailedError) {
    return { ...inner.info, exitCode: inner.exitCode, runs: inner.runs };
  }
  const e = inner instanceof Error ? inner : new Error(String(inner));
  const details = inner instanceof ThinimageError ? inner.details : undefined;
  return {
    name: e.name,
    message: e.message,
    exitCode: exitCodeOf(inner),
    ...(details ? { details: jsonSafe(details) } : {}),
  };
}

function jsonSafe(v: Record<string, unknown>): Record<string, unknown> | undefined {
  try {
    return JSON.parse(JSON.stringify(v));
  } catch {
    return undefined;
  }
}

/**
 * A run ended without its result: it failed (a permanent error, or retries used up).
 * Carries the exit code of the error that stopped it, so `--json`/cron see e.g. 65 for
 * hostile input whichever process ran the transition. Its message is the cause's; the runs it
 * came through are {@linkcode RunFailedError.runs} (this one first), for a second line and for
 * `thinimage history RUN-ID`.
 */
export class RunFailedError extends ThinimageError {
  override readonly exitCode: ExitCode;
  protected override readonly permanentByDefault: boolean;
  /** This run, then the child runs the error came through, outermost first. */
  readonly runs: RunLink[];
  constructor(
    readonly runId: string,
    readonly state: string,
    readonly info: ErrorInfo,
    cause?: unknown,
    where: { machine?: string; resource?: string } = {},
  ) {
    const runs = [{ runId, ...where, state }, ...(info.runs ?? [])];
    super(info.message, {
      cause,
      details: { ...info.details, runs, error: info.name },
    });
    this.runs = runs;
    this.exitCode = info.exitCode;
    // Only the stored record is at hand (the run may have failed in another process): a
    // classified failure (any exit code but 1) would meet a fresh run again.
    this.permanentByDefault = info.exitCode !== ExitCode.Failure;
  }
}

/** A run was interrupted by its AbortSignal; it stays active and resumes later (exit 75). */
export class RunInterruptedError extends TemporaryError {
  constructor(readonly runId: string, readonly state: string, cause?: unknown) {
    super(`run ${runId} interrupted in '${state}'; it resumes on the next start`, {
      cause,
      details: { runId, state },
    });
  }
}

/** A run's record cannot be decoded or does not fit its machine; it cannot resume. */
export class CorruptRunError extends ThinimageError {
  constructor(readonly runId: string, reason: string) {
    super(`run ${runId} is corrupt: ${reason}`, { details: { runId } });
  }
}
