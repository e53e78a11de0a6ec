/**
 * Hashes a blob on another thread while the applier parses and writes it: SHA-256 costs as
 * much CPU as parsing a layer does, and the second core is otherwise idle. Message in: the
 * blob's path. Messages out: `{ tid }` first, this thread's id when libc may be called (so the
 * caller can set its priority), then `{ sha256, identity }` (identity as
 * {@linkcode fileIdentity}), or `{ error }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { createHash } from "node:crypto";
import { fileIdentity } from "../host/file_identity.ts";
import { libc, LIBC_PATH } from "../host/libc.ts";

/**
 * Read size: chunks that stay in the core's cache between the copy and the hash (the
 * /usr-trees layer of bench/tar.ts hashed in 310-323 ms by 128 KiB, 341-361 ms by 1 MiB).
 */
const READ = 128 << 10;

self.onmessage = (e: MessageEvent<string>) => {
  try {
    if (Deno.permissions.querySync({ name: "ffi", path: LIBC_PATH }).state === "granted") {
      self.postMessage({ tid: libc().gettid() });
    }
    using file = Deno.openSync(e.data, { read: true });
    const identity = fileIdentity(file.statSync());
    const buf = new Uint8Array(READ);
    const hash = createHash("sha256");
    for (let n = file.readSync(buf); n; n = file.readSync(buf)) hash.update(buf.subarray(0, n));
    self.postMessage({ sha256: hash.digest("hex"), identity });
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
