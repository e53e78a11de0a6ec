/**
 * SHA-256 of a blob computed on another thread ({@linkcode ./sha256_worker.ts}) while the
 * caller parses it: hashing costs about as much CPU as parsing, and the second core is
 * otherwise idle. The worker reports the identity of the file it read, so the caller can check
 * it hashed the bytes it parsed.
 *
 * @example
 * ```ts
 * import { hashInBackground } from "./background_hash.ts";
 * const h = hashInBackground("layer.tar");
 * const { sha256, identity } = await h.result;
 * ```
 * @module
 */

/** SHA-256 of the file at `path`, computed on another thread; `cancel` stops it. */
export function hashInBackground(path: string): {
  result: Promise<{ sha256: string; identity: string }>;
  cancel(): void;
} {
  const worker = new Worker(new URL("./sha256_worker.ts", import.meta.url), { type: "module" });
  const result = new Promise<{ sha256: string; identity: string }>((resolve, reject) => {
    worker.onmessage = (e) => {
      worker.terminate();
      if (e.data.error) reject(new Error(`hashing ${path}: ${e.data.error}`));
      else resolve(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      worker.terminate();
      reject(new Error(`hashing ${path}: ${e.message}`));
    };
  });
  result.catch(() => {}); // awaited only when the layer was read to the end
  worker.postMessage(path);
  return { result, cancel: () => worker.terminate() };
}
