/**
 * The layer pipeline of a pull, apart from what each stage does: blobs download in layer
 * order, a bounded number at once ({@linkcode inOrder}); layer i is prepared (its chain id
 * computed, the layer validated) once its blob and layer i-1 are ready; layers are unpacked
 * one after the other, in order, while later blobs still download. `fetch` uses the download
 * stage alone ({@linkcode allInOrder}).
 *
 * A failure anywhere starts no more downloads; preparing stops (its signal aborts) once
 * unpacking fails; and neither function returns or throws while a stage is still running.
 *
 * @example
 * ```ts
 * import { allInOrder } from "./pipeline.ts";
 * const sizes = await allInOrder(["a", "bb", "ccc"], 2, (s) => Promise.resolve(s.length));
 * // [1, 2, 3]: at most two running at once, started in order
 * ```
 * @module
 */

/** Started in order, at most a bound at once: one promise per item. */
export interface InOrder<R> {
  /** The result of each item, in the items' order. */
  results: Promise<R>[];
  /** Start no more: those not started reject. */
  stop(): void;
  /** Resolves once none is running. */
  settled: Promise<unknown>;
}

/**
 * `fn` over `items` in their order, at most `limit` at once. After a failure or `stop()`, no
 * more start and those not started reject. A result nobody awaits is no unhandled rejection.
 */
export function inOrder<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): InOrder<R> {
  const results = items.map(() => Promise.withResolvers<R>());
  for (const r of results) r.promise.catch(() => {});
  let next = 0;
  const stop = () => {
    for (; next < items.length; next++) results[next].reject(new Error("not started"));
  };
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i].resolve(await fn(items[i]));
      } catch (err) {
        results[i].reject(err);
        stop();
      }
    }
  };
  const workers = Math.max(1, Math.min(limit, items.length));
  const settled = Promise.all(Array.from({ length: workers }, worker));
  return { results: results.map((r) => r.promise), stop, settled };
}

/**
 * Every result of {@linkcode inOrder}, in order; the first failure is thrown once nothing runs
 * any more, so no download is still writing when the caller sees the error.
 */
export async function allInOrder<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const run = inOrder(items, limit, fn);
  try {
    return await Promise.all(run.results);
  } finally {
    run.stop();
    await run.settled;
  }
}

/** The stages of {@linkcode runLayerPipeline}. */
export interface LayerStages<L, B, P, U> {
  /** Downloads at once. */
  limit: number;
  /** Store the blob of `layer` (bounded, in layer order). */
  fetch(layer: L): Promise<B>;
  /**
   * Make ready to unpack, once `blob` is stored and the layer below is prepared (`below`,
   * none for the first). `signal` aborts once the pipeline fails.
   */
  prepare(layer: L, blob: B, below: P | undefined, signal: AbortSignal): Promise<P>;
  /** Unpack one prepared layer onto the one unpacked before it (none for the first). */
  unpack(layer: P, below: U | undefined): Promise<U>;
}

/** Run `layers` through the stages; the unpacked layers, in order. */
export async function runLayerPipeline<L, B, P, U>(
  layers: readonly L[],
  stages: LayerStages<L, B, P, U>,
  signal: AbortSignal,
): Promise<U[]> {
  const fetching = inOrder(layers, stages.limit, stages.fetch);
  // Preparing is aborted once the pipeline fails: nothing of it is kept.
  const failed = new AbortController();
  const preparing = AbortSignal.any([signal, failed.signal]);
  // Layer i is prepared after layer i-1 and only once its blob is stored: a refused layer
  // must stop every layer after it.
  const prepared: Promise<P>[] = [];
  for (const [i, layer] of layers.entries()) {
    const previous = prepared[i - 1];
    const p = (async () => {
      const below = await previous;
      return await stages.prepare(layer, await fetching.results[i], below, preparing);
    })();
    p.catch(() => fetching.stop()); // a refused or missing layer: start no more downloads
    prepared.push(p);
  }
  try {
    const unpacked: U[] = [];
    for (const ready of prepared) unpacked.push(await stages.unpack(await ready, unpacked.at(-1)));
    return unpacked;
  } catch (err) {
    failed.abort(err);
    throw err;
  } finally {
    // Downloads in flight are let finish rather than aborted: one cut short would leave its
    // blob run active until someone asks for that blob again, and gc refuses to run while any
    // run is active. The caller's signal still interrupts them at once.
    fetching.stop();
    await Promise.allSettled([fetching.settled, ...prepared]);
  }
}
