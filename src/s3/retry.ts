/**
 * Bounded retries with exponential backoff and full jitter, honouring Retry-After.
 *
 * @example
 * ```ts
 * import { withRetries } from "./retry.ts";
 * const body = await withRetries(() => fetch("http://127.0.0.1:7480/").then((r) => r.text()), {
 *   attempts: 3,
 *   isRetryable: () => true,
 * });
 * ```
 * @module
 */
import { sleep } from "../sleep.ts";

/** Re-exported: the retry loops here and in retrieval wait with it. */
export { sleep };

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Attempts in all, including the first (default 5). */
  attempts?: number;
  /** First backoff, in ms (default 200); doubles each attempt. */
  baseDelayMs?: number;
  /** Longest single wait, in ms (default 10 s); also caps a server's Retry-After. */
  maxDelayMs?: number;
  /** Aborts waiting and stops retrying. */
  signal?: AbortSignal;
}

/** Default policy values. */
export const DEFAULT_RETRY: Required<Omit<RetryPolicy, "signal">> = {
  attempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
};

/** The wait before attempt `attempt + 1` (0-based `attempt` just failed). */
export function backoffMs(
  attempt: number,
  policy: RetryPolicy = {},
  retryAfterMs?: number,
): number {
  const base = policy.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs;
  const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  if (retryAfterMs !== undefined) return Math.min(max, Math.max(0, retryAfterMs));
  // Full jitter: concurrent hosts that failed together do not come back together.
  return Math.random() * Math.min(max, base * 2 ** attempt);
}

/**
 * Run `fn` until it succeeds, `isRetryable` says no, or the attempts run out; the last error
 * is thrown. `retryAfterMs` lets an error carry the server's requested wait.
 */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryPolicy & {
    isRetryable: (err: unknown) => boolean;
    retryAfterMs?: (err: unknown) => number | undefined;
    onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
  },
): Promise<T> {
  const attempts = opts.attempts ?? DEFAULT_RETRY.attempts;
  for (let attempt = 0;; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted || attempt + 1 >= attempts || !opts.isRetryable(err)) throw err;
      const wait = backoffMs(attempt, opts, opts.retryAfterMs?.(err));
      opts.onRetry?.(err, attempt, wait);
      await sleep(wait, opts.signal);
    }
  }
}
