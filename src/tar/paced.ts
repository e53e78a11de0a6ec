/**
 * A layer source that lets the event loop run while a layer is read, so that SIGINT and
 * SIGTERM stop `validate`, `apply` and unpacking between chunks (see src/yield.ts).
 *
 * @example
 * ```ts
 * import { openLayerSource } from "./source.ts";
 * import { paced } from "./paced.ts";
 * const src = paced(await openLayerSource("layer.tar"), AbortSignal.timeout(5000));
 * await src.next(); // rejects with the signal's reason once it aborted
 * ```
 * @module
 */
import type { LayerSource } from "./source.ts";
import { yieldToEventLoop } from "../yield.ts";

/** `src`, turning the event loop at most every few tens of ms and stopping once `signal` aborts. */
export function paced(src: LayerSource, signal?: AbortSignal): LayerSource {
  return {
    get compression() {
      return src.compression;
    },
    get fileBytes() {
      return src.fileBytes;
    },
    get fileBytesRead() {
      return src.fileBytesRead;
    },
    async next() {
      await yieldToEventLoop(signal);
      return await src.next();
    },
    skip: (n) => src.skip(n),
    sha256: () => src.sha256(),
    close: () => src.close(),
  };
}
