/**
 * Hashes a blob on another thread while the applier parses and writes it: SHA-256 costs as
 * much CPU as parsing a layer does, and the second core is otherwise idle. Message in: the
 * blob's path, and a shared word where it counts the MiB hashed so far (the caller paces it by
 * that). Messages out: `{ tid }` first, this thread's id when libc may be called (so the caller
 * can set its priority), then `{ sha256, identity }` (identity as {@linkcode fileIdentity}), or
 * `{ error }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { createHash } from "node:crypto";
import { LIBC_PATH, threadId } from "../host/libc.ts";
import { hashFile } from "./background_hash.ts";

self.onmessage = (e: MessageEvent<{ path: string; hashed: Int32Array }>) => {
  try {
    if (Deno.permissions.querySync({ name: "ffi", path: LIBC_PATH }).state === "granted") {
      self.postMessage({ tid: threadId() });
    }
    self.postMessage(hashFile(e.data.path, createHash, e.data.hashed));
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
