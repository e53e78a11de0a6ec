// The blob's digest from the hash worker (at idle priority until hurried), or from this
// thread, is the file's SHA-256, with the identity of the file it read, however it is paced.
import { createHash } from "node:crypto";
import { assertEquals } from "../helpers/assert.ts";
import {
  hashFile,
  hashInBackground,
  PACE_LAG_MIB,
  paceChange,
} from "../../src/tar/background_hash.ts";
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

Deno.test(
  "hashInBackground: paced from behind and from ahead, the same digest",
  withBlob(async (path, sha256) => {
    const h = hashInBackground(path);
    try {
      // Far ahead of the worker (it runs as any thread), then behind it (idle again).
      for (let i = 0; i < 50; i++) {
        h.pace(i % 2 ? 0 : 1 << 40);
        await new Promise((r) => setTimeout(r, 1));
      }
      assertEquals((await h.result).sha256, sha256);
    } finally {
      h.cancel();
    }
  }),
);

Deno.test(
  "hashFile counts the MiB it hashed where the caller paces it",
  withBlob((path, sha256) => {
    const counted = new Int32Array(new SharedArrayBuffer(4));
    assertEquals(hashFile(path, createHash, counted).sha256, sha256);
    assertEquals(counted[0], 5); // 5 MiB and 3 bytes
    return Promise.resolve();
  }),
);

Deno.test("paceChange: full share once more than the lag behind, idle again once ahead", () => {
  assertEquals(paceChange(true, 10, 10 + PACE_LAG_MIB), undefined); // within the lag
  assertEquals(paceChange(true, 10, 11 + PACE_LAG_MIB), false);
  assertEquals(paceChange(false, 10, 11 + PACE_LAG_MIB), undefined); // still catching up
  assertEquals(paceChange(false, 10, 10), undefined);
  assertEquals(paceChange(false, 11, 10), true);
  assertEquals(paceChange(true, 11, 10), undefined);
});
