/**
 * Hashes a blob on another thread while the applier parses and writes it: SHA-256 costs as
 * much CPU as parsing a layer does, and the second core is otherwise idle. Message in: the
 * blob's path. Message out: `{ sha256, identity }` (identity as {@linkcode fileIdentity}), or
 * `{ error }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { createHash } from "node:crypto";
import { fileIdentity } from "../host/file_identity.ts";

self.onmessage = (e: MessageEvent<string>) => {
  try {
    const file = Deno.openSync(e.data, { read: true });
    try {
      const identity = fileIdentity(file.statSync());
      const buf = new Uint8Array(1 << 20);
      const hash = createHash("sha256");
      for (let n = file.readSync(buf); n; n = file.readSync(buf)) hash.update(buf.subarray(0, n));
      self.postMessage({ sha256: hash.digest("hex"), identity });
    } finally {
      file.close();
    }
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
