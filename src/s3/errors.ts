/**
 * How S3 failures are told apart: retry (5xx, throttling, resets, timeouts), give up (403,
 * 404: the source does not have or will not give what was asked), or start over (the object
 * changed under us).
 *
 * @example
 * ```ts
 * import { S3RequestError } from "./errors.ts";
 * const err = new S3RequestError("GET images/x/1.tar: 503 SlowDown", { status: 503, retryable: true });
 * err.exitCode; // 69 once retries are exhausted
 * ```
 * @module
 */
import { SourceUnavailableError, TemporaryError } from "../errors.ts";
import type { RetryOptions, RetryPolicy } from "../retry.ts";

/** A request the source answered with an error, or that failed on the way (exit 69). */
export class S3RequestError extends SourceUnavailableError {
  /** The HTTP status, when the server answered. */
  readonly status?: number;
  /** The S3 error code (`NoSuchKey`, `SlowDown`...), when the server sent one. */
  readonly code?: string;
  /** Worth another attempt: 5xx, throttling, a reset or a timeout. */
  readonly retryable: boolean;
  /** The server's Retry-After, in ms. */
  readonly retryAfterMs?: number;

  constructor(
    message: string,
    opts: {
      status?: number;
      code?: string;
      retryable: boolean;
      retryAfterMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, {
      cause: opts.cause,
      details: { status: opts.status, code: opts.code },
    });
    this.status = opts.status;
    this.code = opts.code;
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/**
 * The object is no longer the one that was listed: its ETag changed (If-Match failed, or a
 * response carried another ETag or length). Exit 75: resolving the image again picks up the
 * new version.
 */
export class ObjectChangedError extends TemporaryError {
  constructor(readonly key: string, message: string, cause?: unknown) {
    super(`${key} changed since it was listed (${message}); resolve the image again`, {
      cause,
      details: { key },
    });
  }
}

/**
 * Retries of S3 requests: 200 ms doubling to at most 10 s, with full jitter (many hosts that
 * failed together do not come back together), for as many attempts as the caller allows.
 */
export function s3RetryPolicy(attempts = 5, initialDelayMs = 200): RetryPolicy {
  return {
    maxAttempts: attempts,
    maxElapsedMs: Infinity,
    initialDelayMs,
    maxDelayMs: 10_000,
    factor: 2,
    jitter: 1,
  };
}

/** Which S3 failures are worth another attempt, and the wait the server asked for. */
export const S3_RETRYABLE: Pick<RetryOptions, "isRetryable" | "retryAfterMs"> = {
  isRetryable: (e) => e instanceof S3RequestError && e.retryable,
  retryAfterMs: (e) => e instanceof S3RequestError ? e.retryAfterMs : undefined,
};
