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
  return err instanceof PermanentError || (err instanceof ThinimageError && err.permanent);
}

/** A transition ran longer than its `timeoutMs` (retryable). */
export class TransitionTimeoutError extends Error {
  constructor(readonly state: string, readonly timeoutMs: number) {
    super(`transition '${state}' timed out after ${timeoutMs} ms`);
    this.name = "TransitionTimeoutError";
  }
}

/** An error as stored in a run: enough to rebuild a useful error in another process. */
export interface ErrorInfo {
  name: string;
  message: string;
  exitCode: ExitCode;
}

/** Describe an error for storage. */
export function errorInfo(err: unknown): ErrorInfo {
  const inner = unwrapPermanent(err);
  const e = inner instanceof Error ? inner : new Error(String(inner));
  return { name: e.name, message: e.message, exitCode: exitCodeOf(inner) };
}

/**
 * A run ended without its result: it failed (a permanent error, or retries used up).
 * Carries the exit code of the error that stopped it, so `--json`/cron see e.g. 65 for
 * hostile input whichever process ran the transition.
 */
export class RunFailedError extends ThinimageError {
  override readonly exitCode: ExitCode;
  protected override readonly permanentByDefault: boolean;
  constructor(
    readonly runId: string,
    readonly state: string,
    readonly info: ErrorInfo,
    cause?: unknown,
  ) {
    super(`run ${runId} failed in '${state}': ${info.message}`, {
      cause,
      details: { runId, state, error: info },
    });
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
