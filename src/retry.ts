/**
 * Retries, in one place: a policy (how many attempts, for how long), the delay before each
 * retry (exponential, capped, with jitter so that many callers failing together do not come
 * back together), the loop that applies them ({@linkcode withRetries}), and the waits
 * ({@linkcode sleep}; {@linkcode sleepSync} for synchronous SQLite transactions).
 *
 * Which errors are worth another attempt is the caller's question (`isRetryable`); the engine
 * and the image machines answer it from the error itself (`ThinimageError.permanent`).
 *
 * @example
 * ```ts
 * import { backoffDelay, DEFAULT_RETRY, withRetries } from "./retry.ts";
 * backoffDelay(1, DEFAULT_RETRY, () => 0); // 100: the first retry, no jitter drawn
 * backoffDelay(3, DEFAULT_RETRY, () => 0); // 400
 * const text = await withRetries(() => Deno.readTextFile("/etc/hostname"), {
 *   policy: { ...DEFAULT_RETRY, maxAttempts: 3 },
 *   isRetryable: (err) => err instanceof Deno.errors.Interrupted,
 * });
 * ```
 * @module
 */
import { sleep } from "./sleep.ts";

export { sleep };

/** Bounds and shape of retries. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1: never retry). */
  maxAttempts: number;
  /** Give up when the next retry would start later than this after the first attempt. */
  maxElapsedMs: number;
  /** Delay before the first retry. */
  initialDelayMs: number;
  /** Cap on any one delay. */
  maxDelayMs: number;
  /** Growth of the delay per attempt. */
  factor: number;
  /** Fraction of each delay drawn at random (0: none, 1: anywhere from 0 to the delay). */
  jitter: number;
}

/** The engine's defaults: 5 attempts within a minute, 100 ms doubling to at most 5 s. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  maxElapsedMs: 60_000,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  factor: 2,
  jitter: 0.5,
};

/**
 * The delay before retrying after failed attempt number `attempt` (1-based): the capped
 * exponential delay, less a random share of up to `jitter` of it. `random` returns [0, 1).
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
  return Math.round(base * (1 - policy.jitter * random()));
}

/**
 * The wait before the next attempt after failed attempt `attempt` (1-based), `elapsedMs` after
 * the first began; or why to give up instead (the attempts or the time are used up).
 */
export function nextRetry(
  attempt: number,
  elapsedMs: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): { delayMs: number } | { giveUp: string } {
  const delayMs = backoffDelay(attempt, policy, random);
  if (attempt >= policy.maxAttempts) return { giveUp: `gave up after ${attempt} attempts` };
  if (elapsedMs + delayMs > policy.maxElapsedMs) {
    return { giveUp: `gave up after ${elapsedMs} ms (limit ${policy.maxElapsedMs} ms)` };
  }
  return { delayMs };
}

/** Validate a policy (from machine or transition options) so a typo fails at build time. */
export function checkPolicy(p: RetryPolicy, where: string): RetryPolicy {
  const bad = (field: string) => {
    throw new RangeError(`${where}: retry.${field} is out of range`);
  };
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1) bad("maxAttempts");
  if (!(p.maxElapsedMs >= 0)) bad("maxElapsedMs");
  if (!(p.initialDelayMs >= 0)) bad("initialDelayMs");
  if (!(p.maxDelayMs >= 0)) bad("maxDelayMs");
  if (!(p.factor >= 1)) bad("factor");
  if (!(p.jitter >= 0 && p.jitter <= 1)) bad("jitter");
  return p;
}

/** What {@linkcode withRetries} needs besides the operation. */
export interface RetryOptions {
  policy: RetryPolicy;
  /** Whether `err` is worth another attempt; anything else is thrown at once. */
  isRetryable: (err: unknown) => boolean;
  /** A wait the error itself asks for (an HTTP Retry-After), capped by `maxDelayMs`. */
  retryAfterMs?: (err: unknown) => number | undefined;
  /** Told before each wait: the error, the attempt that failed (1-based), the wait. */
  onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
  /** Aborts the wait and stops retrying. */
  signal?: AbortSignal;
  random?: () => number;
}

/**
 * Run `fn` (given the 1-based attempt number) until it succeeds, an error is not retryable, or
 * the policy gives up; the last error is thrown.
 */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  const start = Date.now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (o.signal?.aborted || !o.isRetryable(err)) throw err;
      const next = nextRetry(attempt, Date.now() - start, o.policy, o.random);
      if ("giveUp" in next) throw err;
      const asked = o.retryAfterMs?.(err);
      const wait = asked === undefined
        ? next.delayMs
        : Math.min(o.policy.maxDelayMs, Math.max(0, asked));
      o.onRetry?.(err, attempt, wait);
      await sleep(wait, o.signal);
    }
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Block the thread for `ms`: for retries inside synchronous code (SQLite transactions). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}
