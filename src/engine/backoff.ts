/**
 * Retry policy: how often and how long a transition is retried, and the delay before each
 * retry (exponential, with jitter so that many runs failing together do not retry together).
 *
 * @example
 * ```ts
 * import { backoffDelay, DEFAULT_RETRY } from "./backoff.ts";
 * backoffDelay(1, DEFAULT_RETRY, () => 0); // 100: the first retry, no jitter drawn
 * backoffDelay(3, DEFAULT_RETRY, () => 0); // 400
 * ```
 * @module
 */

/** Bounds and shape of retries. Every field is optional where it is accepted. */
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
