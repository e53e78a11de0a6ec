/**
 * A cheap, periodic turn of the event loop for loops that do synchronous I/O.
 *
 * The tar passes read with `readSync` and `await` promises that are already resolved, so they
 * run as one long chain of microtasks: Deno's signal listeners, timers and I/O callbacks are
 * macrotasks and never get a turn until the whole layer is done (SIGTERM sent to `validate` of a
 * 3 GiB gzip ran it to the end). {@linkcode yieldToEventLoop} gives the event loop one turn when
 * at least {@linkcode YIELD_INTERVAL_MS} of wall time has passed since the last turn, and
 * otherwise costs one clock read.
 *
 * @example
 * ```ts
 * import { yieldToEventLoop } from "./yield.ts";
 * const signal = AbortSignal.timeout(10_000);
 * for (let i = 0; i < 1e6; i++) {
 *   await yieldToEventLoop(signal); // throws the signal's reason once it aborted
 * }
 * ```
 * @module
 */

/** Wall time between two turns of the event loop, at most. */
export const YIELD_INTERVAL_MS = 25;

let due = 0;

/**
 * Let timers, signal listeners and I/O callbacks run when {@linkcode YIELD_INTERVAL_MS} has
 * passed since the last turn; then reject with `signal`'s reason if it aborted.
 */
export async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  const now = performance.now();
  if (now >= due) {
    await turn();
    due = performance.now() + YIELD_INTERVAL_MS;
  }
  signal?.throwIfAborted();
}

/**
 * One turn of the event loop: a message to ourselves, which arrives through the loop (a
 * microtask would not let the other macrotasks run), like a timer, but without the timer's
 * wait. `setTimeout(resolve, 0)` kept this thread asleep about 2 ms a turn and 11-28 ms the
 * first time in a process (the timer machinery starting): an idle tenth of every 25 ms for the
 * thread that paces a layer's pass. A message round trip takes 0.2-0.4 ms, 2-3 ms the first
 * time. The channel lives for one turn: an open port would keep the process alive.
 */
async function turn(): Promise<void> {
  const { port1, port2 } = new MessageChannel();
  try {
    await new Promise((resolve) => {
      port2.onmessage = resolve;
      port1.postMessage(null);
    });
  } finally {
    port1.close();
    port2.close();
  }
}
