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
import { fileIdentity } from "../host/file_identity.ts";

/**
 * SHA-256 of the file at `path`, computed on another thread; `cancel` stops it. Where no worker
 * can start (its module unreadable under a path-scoped `--allow-read`), the digest is computed
 * on this thread when `result` is awaited: slower, the same answer. So it is with `inline`
 * (for a blob too small to be worth a thread).
 */
export function hashInBackground(path: string, opts: { inline?: boolean } = {}): {
  result: Promise<{ sha256: string; identity: string }>;
  cancel(): void;
} {
  const url = new URL("./sha256_worker.ts", import.meta.url);
  if (opts.inline || !mayLoad(url)) {
    const result = hashHere(path);
    result.catch(() => {});
    return { result, cancel() {} };
  }
  const worker = new Worker(url, { type: "module" });
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
  return {
    result: result.catch(() => hashHere(path)),
    cancel: () => worker.terminate(),
  };
}

/**
 * Whether a worker module at `url` can be loaded: a local file needs read access (Deno prints
 * an uncaught error for a worker it cannot load, so ask first).
 */
export function mayLoad(url: URL): boolean {
  if (url.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: decodeURIComponent(url.pathname) })
    .state === "granted";
}

/** The same digest and identity, computed on this thread. */
async function hashHere(path: string): Promise<{ sha256: string; identity: string }> {
  const { createHash } = await import("node:crypto");
  using file = Deno.openSync(path, { read: true });
  const identity = fileIdentity(file.statSync());
  const hash = createHash("sha256");
  const buf = new Uint8Array(1 << 20);
  for (let n = file.readSync(buf); n; n = file.readSync(buf)) hash.update(buf.subarray(0, n));
  return { sha256: hash.digest("hex"), identity };
}
