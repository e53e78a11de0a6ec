/**
 * fetchLayer's receive loop against an in-memory source, so that both kinds of body (a byte
 * stream read into one reused buffer, as fetch's are, and a plain stream of chunks) meet the
 * same faults: a body cut in the middle of a read, a corrupted byte, a cancelled download.
 */
import { createHash } from "node:crypto";
import { assertEquals, assertRejects } from "../helpers/assert.ts";
import { makeTar, randomBytes, tempFiles, tempState } from "../helpers/s3.ts";
import { fetchLayer } from "../../src/retrieve/fetch_layer.ts";
import type { ObjectSource } from "../../src/retrieve/source.ts";
import type { GetOptions, GetResponse } from "../../src/s3/client.ts";
import type { Layer } from "../../src/image/manifest.ts";
import { InvalidInputError } from "../../src/errors.ts";

const BLOB = makeTar({ "usr/lib/big.bin": randomBytes(3 * 1024 * 1024 + 4321, 3) });
const SHA = createHash("sha256").update(BLOB).digest("hex");
const MD5 = createHash("md5").update(BLOB).digest("hex");

interface MemoryOptions {
  /** What the GETs serve (default BLOB). */
  data?: Uint8Array;
  /** A byte stream (BYOB-readable, like fetch's bodies) or a plain one. */
  byteStream: boolean;
  /** The first GET's body fails after this many bytes. */
  failAfter?: number;
}

/** A source serving one object from memory; `starts` records each GET's first byte. */
function memorySource(
  etag: string,
  opts: MemoryOptions,
): ObjectSource & { starts: number[] } {
  const data = opts.data ?? BLOB;
  const starts: number[] = [];
  const get = (_key: string, o: GetOptions = {}): Promise<GetResponse> => {
    const start = o.start ?? 0;
    starts.push(start);
    const end = starts.length === 1 && opts.failAfter !== undefined ? opts.failAfter : data.length;
    let pos = start;
    const chunk = 50_000;
    const next = (): Uint8Array | Error | null => {
      if (o.signal?.aborted) return o.signal.reason;
      if (pos >= end) return end < data.length ? new TypeError("connection reset") : null;
      const part = data.slice(pos, Math.min(end, pos + chunk));
      pos += part.length;
      return part;
    };
    const body = opts.byteStream
      ? new ReadableStream({
        type: "bytes",
        async pull(c) {
          await Promise.resolve();
          const r = next();
          if (r instanceof Error) c.error(r);
          else if (r === null) {
            c.close();
            // A BYOB read waiting at the end learns of it only through its request.
            c.byobRequest?.respond(0);
          } else c.enqueue(r);
        },
      })
      : new ReadableStream<Uint8Array>({
        async pull(c) {
          await Promise.resolve();
          const r = next();
          if (r instanceof Error) c.error(r);
          else if (r === null) c.close();
          else c.enqueue(r);
        },
      });
    return Promise.resolve({
      status: start > 0 ? 206 : 200,
      body: body as ReadableStream<Uint8Array>,
      contentLength: data.length - start,
      etag,
      objectSize: data.length,
    });
  };
  return {
    location: "memory://test",
    prefix: "images/",
    starts,
    // deno-lint-ignore require-yield
    async *list() {
      throw new Error("not listed here");
    },
    get,
    close() {},
  };
}

const layerOf = (etag: string, size = BLOB.length): Layer => ({
  key: "images/m/1.tar",
  size,
  etag,
  lastModified: "",
  index: 1,
});

const cases = [{ byteStream: true }, { byteStream: false }];
const named = (c: typeof cases[number]) => c.byteStream ? "byte stream" : "plain stream";
const fast = { retryBaseDelayMs: 1 };

for (const c of cases) {
  Deno.test(`fetchLayer: a body cut mid-read resumes from its last byte (${named(c)})`, async () => {
    await using s = await tempState();
    const source = memorySource(MD5, { byteStream: c.byteStream, failAfter: 1_234_567 });
    const r = await fetchLayer(source, s.blobs, layerOf(MD5), fast);
    assertEquals(source.starts, [0, 1_234_567], "only the missing bytes are asked for again");
    assertEquals([r.sha256, r.size, r.downloaded], [SHA, BLOB.length, true]);
    assertEquals(
      createHash("sha256").update(await Deno.readFile(s.blobs.pathOf(r.sha256))).digest("hex"),
      SHA,
    );
    assertEquals(await tempFiles(s.dir), []);
  });

  Deno.test(`fetchLayer: one corrupted byte fails the ETag check, exit 65 (${named(c)})`, async () => {
    await using s = await tempState();
    const bad = BLOB.slice();
    bad[2_000_001] ^= 0x40;
    const source = memorySource(MD5, { data: bad, byteStream: c.byteStream });
    const err = await assertRejects(
      () => fetchLayer(source, s.blobs, layerOf(MD5), fast),
      InvalidInputError,
      "MD5",
    );
    assertEquals(err.exitCode, 65);
    assertEquals(s.blobs.list(), []);
    assertEquals(await tempFiles(s.dir), []);
  });
}

Deno.test("fetchLayer: a multipart ETag has no MD5 to check; the SHA-256 is still the bytes'", async () => {
  await using s = await tempState();
  const etag = "0123456789abcdef0123456789abcdef-3";
  const source = memorySource(etag, { byteStream: true });
  const r = await fetchLayer(source, s.blobs, layerOf(etag));
  assertEquals(r.sha256, SHA);
});

Deno.test("fetchLayer: cancelling mid-body leaves no temporary file and nothing stored", async () => {
  await using s = await tempState();
  const source = memorySource(MD5, { byteStream: true });
  const ac = new AbortController();
  await assertRejects(
    () =>
      fetchLayer(source, s.blobs, layerOf(MD5), {
        signal: ac.signal,
        onProgress: (bytes) => {
          if (bytes >= 1_500_000) ac.abort(new Error("cancelled by the test"));
        },
      }),
    Error,
    "cancelled by the test",
  );
  assertEquals(s.blobs.list(), []);
  assertEquals(await tempFiles(s.dir), []);
});

/** What a process killed mid-download leaves: its locked temporary file, then its lock gone. */
async function deadDownload(
  s: { blobs: import("../../src/blobs/store.ts").BlobStore },
  bytes: Uint8Array,
) {
  const t = await s.blobs.createTemp(`${MD5}:${BLOB.length}`);
  await t.file.write(bytes);
  t.file.close(); // the kernel drops the lock with the process
  return t.path;
}

Deno.test("fetchLayer: a download a dead process left is taken over; only the rest is fetched", async () => {
  await using s = await tempState();
  await deadDownload(s, BLOB.slice(0, 1_000_000));
  // The sweeper that runs before each fetch leaves a resumable download alone.
  assertEquals(await s.blobs.removeStaleTemps(), []);
  const source = memorySource(MD5, { byteStream: true });
  const r = await fetchLayer(source, s.blobs, layerOf(MD5), fast);
  assertEquals(source.starts, [1_000_000], "the bytes on disk are not fetched again");
  assertEquals([r.sha256, r.size, r.downloaded], [SHA, BLOB.length, true]);
  assertEquals(await tempFiles(s.dir), []);
});

Deno.test("fetchLayer: a dead process's complete download is committed without a GET", async () => {
  await using s = await tempState();
  await deadDownload(s, BLOB);
  const source = memorySource(MD5, { byteStream: true });
  const r = await fetchLayer(source, s.blobs, layerOf(MD5), fast);
  assertEquals(source.starts, []);
  assertEquals([r.sha256, r.size], [SHA, BLOB.length]);
});

Deno.test("fetchLayer: bytes a dead process left that do not match are fetched again from 0", async () => {
  await using s = await tempState();
  const bad = BLOB.slice(0, 500_000);
  bad[1000] ^= 1;
  await deadDownload(s, bad);
  const source = memorySource(MD5, { byteStream: true });
  const r = await fetchLayer(source, s.blobs, layerOf(MD5), fast);
  assertEquals(source.starts, [500_000, 0]);
  assertEquals(r.sha256, SHA);
  assertEquals(await tempFiles(s.dir), []);
});

Deno.test("fetchLayer: a download in a live process is not taken over", async () => {
  await using s = await tempState();
  const live = await s.blobs.createTemp(`${MD5}:${BLOB.length}`); // still locked
  try {
    await live.file.write(BLOB.slice(0, 1_000_000));
    const source = memorySource(MD5, { byteStream: true });
    await fetchLayer(source, s.blobs, layerOf(MD5), fast);
    assertEquals(source.starts, [0]);
  } finally {
    live.file.close();
  }
});
