// The blob's digest from the hash worker (at idle priority until hurried), or from this
// thread, is the file's SHA-256, with the identity of the file it read.
import { createHash } from "node:crypto";
import { assertEquals } from "../helpers/assert.ts";
import { hashInBackground } from "../../src/tar/background_hash.ts";
import { fileIdentity } from "../../src/host/file_identity.ts";

function withBlob(fn: (path: string, sha256: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "thinimage-hash-test-" });
    try {
      const path = `${dir}/blob`;
      // Several of the worker's reads, the last one short.
      const bytes = new Uint8Array((5 << 20) + 3);
      for (let i = 0; i < bytes.length; i += 65536) {
        crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, bytes.length)));
      }
      Deno.writeFileSync(path, bytes);
      await fn(path, createHash("sha256").update(bytes).digest("hex"));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "hashInBackground: the worker's digest is the file's, never hurried",
  withBlob(async (path, sha256) => {
    const h = hashInBackground(path);
    try {
      // Left idle the whole time: on a machine otherwise quiet it still finishes.
      assertEquals(await h.result, { sha256, identity: fileIdentity(Deno.statSync(path)) });
    } finally {
      h.cancel();
    }
  }),
);

Deno.test(
  "hashInBackground: hurried before the worker reported its thread, the same digest",
  withBlob(async (path, sha256) => {
    const h = hashInBackground(path);
    try {
      h.hurry();
      assertEquals((await h.result).sha256, sha256);
    } finally {
      h.cancel();
    }
  }),
);

Deno.test(
  "hashInBackground: inline (no worker), the same digest and identity",
  withBlob(async (path, sha256) => {
    const h = hashInBackground(path, { inline: true });
    h.hurry();
    assertEquals(await h.result, { sha256, identity: fileIdentity(Deno.statSync(path)) });
  }),
);
