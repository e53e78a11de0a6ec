/**
 * The stream hasher: the same digests as hashing in one go, whether on this thread or a
 * worker, in submission order; a bounded pool of buffers; a closed hasher stops its worker.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals, assertRejects, assertThrows } from "../helpers/assert.ts";
import { randomBytes } from "../helpers/s3.ts";
import { type HashAlgorithm, HasherError, StreamHasher } from "../../src/retrieve/hasher.ts";

const hex = (algo: string, data: Uint8Array) => createHash(algo).update(data).digest("hex");

/** Feed `data` in pieces of irregular sizes, each into its own buffer. */
async function feed(h: StreamHasher, data: Uint8Array): Promise<void> {
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const buf = await h.take();
    const n = Math.min(data.length - off, [1, 4096, h.bufferSize, 777, h.bufferSize - 3][i % 5]);
    buf.set(data.subarray(off, off + n));
    h.submit(buf.subarray(0, n));
    off += n;
  }
}

const layouts: (readonly HashAlgorithm[])[] = [[], ["sha256", "md5"], ["md5"]];

for (const offThread of layouts) {
  const where = offThread.length ? `${offThread.join("+")} on a worker` : "all on this thread";
  Deno.test(`hasher: digests match hashing in one go, in order (${where})`, async () => {
    const data = randomBytes(3 * 65536 + 12345, 5);
    const h = new StreamHasher({
      algorithms: ["sha256", "md5"],
      offThread,
      bufferSize: 65536,
      buffers: 3,
    });
    try {
      await feed(h, data);
      assertEquals(await h.digest(), { sha256: hex("sha256", data), md5: hex("md5", data) });
    } finally {
      h.close();
    }
  });
}

Deno.test("hasher: one byte changed changes both digests (on a worker)", async () => {
  const data = randomBytes(200_000, 9);
  const bad = data.slice();
  bad[123_456] ^= 1;
  const h = new StreamHasher({ algorithms: ["sha256", "md5"], offThread: ["sha256", "md5"] });
  try {
    await feed(h, bad);
    const d = await h.digest();
    assert(d.md5 !== hex("md5", data) && d.sha256 !== hex("sha256", data));
    assertEquals(d, { sha256: hex("sha256", bad), md5: hex("md5", bad) });
  } finally {
    h.close();
  }
});

Deno.test("hasher: only the algorithms asked for", async () => {
  const data = randomBytes(10_000, 2);
  const h = new StreamHasher({ algorithms: ["sha256"], offThread: ["sha256"] });
  try {
    await feed(h, data);
    assertEquals(await h.digest(), { sha256: hex("sha256", data) });
  } finally {
    h.close();
  }
  assertThrows(
    () => new StreamHasher({ algorithms: ["sha256"], offThread: ["md5"] }),
    TypeError,
    "md5",
  );
});

Deno.test("hasher: take waits while every buffer of the pool is out", async () => {
  const h = new StreamHasher({ algorithms: ["sha256"], bufferSize: 1024, buffers: 2 });
  try {
    const a = await h.take();
    await h.take();
    let third: Uint8Array | undefined;
    const waiting = h.take().then((b) => (third = b));
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(third, undefined, "the pool is bounded");
    h.submit(a.subarray(0, 10));
    await waiting;
    assertEquals(third!.length, 1024);
  } finally {
    h.close();
  }
});

Deno.test("hasher: a buffer lost to a stream is written off and replaced", async () => {
  const h = new StreamHasher({ algorithms: ["sha256"], bufferSize: 1024, buffers: 1 });
  try {
    const a = await h.take();
    // What a BYOB read that fails does to the buffer it was given.
    (a.buffer as ArrayBuffer).transfer();
    assertEquals(a.byteLength, 0);
    h.release(a);
    const b = await h.take();
    assertEquals(b.length, 1024);
  } finally {
    h.close();
  }
});

Deno.test("hasher: submit refuses what did not come from take", () => {
  const h = new StreamHasher({ algorithms: ["sha256"], bufferSize: 1024 });
  try {
    assertThrows(() => h.submit(new Uint8Array(10)), TypeError);
  } finally {
    h.close();
  }
});

Deno.test("hasher: close stops the worker and fails whatever waits on it", async () => {
  const h = new StreamHasher({
    algorithms: ["sha256", "md5"],
    offThread: ["sha256", "md5"],
    bufferSize: 1024,
    buffers: 1,
  });
  await h.take();
  const waiting = h.take();
  h.close();
  await assertRejects(() => waiting, HasherError, "closed");
  await assertRejects(() => h.digest(), HasherError, "closed");
  assertThrows(() => h.submit(new Uint8Array(1024)), HasherError, "closed");
  h.close();
});
