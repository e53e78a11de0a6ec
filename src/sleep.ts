/**
 * An abortable sleep, shared by everything that waits between attempts (the engine's retries
 * and polls, S3 retries, busy device retries).
 *
 * @example
 * ```ts
 * import { sleep } from "./sleep.ts";
 * await sleep(100, AbortSignal.timeout(1000)); // resolves after 100 ms
 * ```
 * @module
 */

/** Resolve after `ms`, or reject with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
