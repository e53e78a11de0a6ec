/**
 * Downloading one layer into the blob store: streaming, verified, bounded, resumable.
 *
 * The bytes go to a temporary file in the state directory while SHA-256 (the blob's name) and
 * MD5 (checked against a single-part ETag) are computed as they arrive, on a worker thread for
 * big blobs (see ./hasher.ts) so that receiving, writing and hashing overlap; the file is
 * fsynced and renamed into the store only after every check passed. An interrupted body
 * resumes with `Range` + `If-Match`; a changed object ends in {@linkcode ObjectChangedError},
 * so the caller resolves the image again instead of splicing two versions. Memory stays flat:
 * a fixed pool of buffers per download (8 MiB), whatever the blob's size.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { BlobStore } from "../blobs/store.ts";
 * import { createSource } from "./source.ts";
 * import { resolveImage } from "./resolve.ts";
 * import { fetchLayer } from "./fetch_layer.ts";
 * const source = createSource();
 * const blobs = new BlobStore("/var/lib/thinimage", openStore("/var/lib/thinimage/thinimage.db"));
 * const manifest = await resolveImage(source, "node");
 * const r = await fetchLayer(source, blobs, manifest.layers[0]);
 * console.log(r.sha256, r.downloaded);
 * ```
 * @module
 */
import type { BlobStore, TempBlob } from "../blobs/store.ts";
import { detectLayerFormat, FORMAT_SNIFF_BYTES, type LayerFormat } from "../image/format.ts";
import type { Layer } from "../image/manifest.ts";
import { InvalidInputError } from "../errors.ts";
import { ObjectChangedError, S3RequestError } from "../s3/errors.ts";
import { backoffMs, sleep } from "../s3/retry.ts";
import type { ObjectSource } from "./source.ts";
import { type HashAlgorithm, HasherError, StreamHasher } from "./hasher.ts";

/** The default per-blob size cap: 4 GiB. */
export const DEFAULT_MAX_BLOB_BYTES = 4 * 1024 ** 3;

/** Options for {@linkcode fetchLayer}. */
export interface FetchLayerOptions {
  signal?: AbortSignal;
  /** Called as bytes arrive (at most once per chunk). */
  onProgress?: (bytes: number, total: number) => void;
  /** Called before each retry, with the reason. */
  onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
  /** Refuse blobs larger than this (default 4 GiB), on the listing, headers and bytes. */
  maxBytes?: number;
  /** GET attempts in all (default 6). */
  attempts?: number;
  /** Give up on a body that sends nothing for this long, in ms (default 30 s). */
  idleTimeoutMs?: number;
  /** First backoff, in ms (default 200). */
  retryBaseDelayMs?: number;
  /** Hash blobs of at least this many bytes on a worker thread (default 8 MiB). */
  workerHashingMinBytes?: number;
}

/** What {@linkcode fetchLayer} stored. */
export interface FetchedLayer {
  sha256: string;
  size: number;
  /** False when a blob with this layer's ETag and size was already stored. */
  downloaded: boolean;
  format: LayerFormat;
}

const MD5_ETAG = /^[0-9a-f]{32}$/;

/**
 * Make sure the blob of `layer` is in `blobs`, downloading it only when no stored blob came
 * from an object with the same ETag and size.
 *
 * Throws InvalidInputError (65) for a blob over `maxBytes`, in a format other than tar or
 * gzip, or whose bytes do not match its ETag; ObjectChangedError (75) when the object is no
 * longer the listed one; S3RequestError (69) when retries run out. In every case no temporary
 * file is left and nothing is recorded.
 */
export async function fetchLayer(
  source: ObjectSource,
  blobs: BlobStore,
  layer: Layer,
  opts: FetchLayerOptions = {},
): Promise<FetchedLayer> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BLOB_BYTES;
  if (layer.size > maxBytes) {
    throw new InvalidInputError(
      `${layer.key} is ${layer.size} bytes, over the ${maxBytes}-byte limit per blob`,
      { details: { key: layer.key, size: layer.size, maxBytes } },
    );
  }
  const known = blobs.findByEtag(layer.etag, layer.size);
  if (known) {
    return { sha256: known, size: layer.size, downloaded: false, format: blobs.get(known)!.format };
  }
  const temp = await blobs.createTemp();
  let committed = false;
  try {
    const result = await download(source, layer, temp, { ...opts, maxBytes });
    // Another process may have stored the same object meanwhile: the commit then keeps theirs.
    await blobs.commit(temp.path, {
      sha256: result.sha256,
      size: result.size,
      format: result.format,
      source: { etag: layer.etag, size: layer.size, key: layer.key },
    });
    committed = true;
    return { ...result, downloaded: true };
  } finally {
    try {
      temp.file.close();
    } catch { /* already closed */ }
    if (!committed) await Deno.remove(temp.path).catch(() => {});
  }
}

/** Bytes from two GETs that together fail the MD5 check: retry from byte 0. */
class SplicedDownloadError extends S3RequestError {
  constructor(key: string) {
    super(`GET ${key}: the resumed download does not match its ETag`, { retryable: true });
  }
}

/** The state of one download across attempts: what is in the file and hashed so far. */
class Progress {
  received = 0;
  hasher: StreamHasher;
  head = new Uint8Array(0);
  format?: LayerFormat;
  /** GETs whose bytes are in the file: more than one means a resumed download. */
  pieces = 0;

  constructor(readonly layer: Layer, readonly workerMinBytes: number) {
    this.hasher = newHasher(layer, workerMinBytes);
  }

  async reset(temp: TempBlob): Promise<void> {
    // A fresh hasher rather than a reset message: the old one may still hold buffers in flight.
    this.hasher.close();
    this.hasher = newHasher(this.layer, this.workerMinBytes);
    this.received = 0;
    this.head = new Uint8Array(0);
    this.format = undefined;
    this.pieces = 0;
    await temp.file.truncate(0);
    await temp.file.seek(0, Deno.SeekMode.Start);
  }
}

/** Below this size a hash worker's start-up (about 25 ms of CPU) costs more than it saves. */
export const WORKER_HASHING_MIN_BYTES = 8 * 1024 * 1024;

function newHasher(layer: Layer, workerMinBytes: number): StreamHasher {
  // A multipart ETag (`...-N`) is no MD5 of the body: nothing to check it against.
  const algorithms: HashAlgorithm[] = MD5_ETAG.test(layer.etag) ? ["sha256", "md5"] : ["sha256"];
  // One worker for both hashes: the receiving thread keeps only the socket and the file, and
  // with two layers downloading at once each has its own worker.
  return new StreamHasher({
    algorithms,
    offThread: layer.size >= workerMinBytes ? algorithms : [],
  });
}

async function download(
  source: ObjectSource,
  layer: Layer,
  temp: TempBlob,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<Omit<FetchedLayer, "downloaded">> {
  const p = new Progress(layer, opts.workerHashingMinBytes ?? WORKER_HASHING_MIN_BYTES);
  try {
    return await downloadWith(source, layer, temp, p, opts);
  } finally {
    p.hasher.close();
  }
}

async function downloadWith(
  source: ObjectSource,
  layer: Layer,
  temp: TempBlob,
  p: Progress,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<Omit<FetchedLayer, "downloaded">> {
  const attempts = opts.attempts ?? 6;
  for (let attempt = 0;; attempt++) {
    try {
      await getInto(source, layer, temp, p, opts);
      const digests = await p.hasher.digest();
      if (MD5_ETAG.test(layer.etag)) {
        const md5 = digests.md5;
        if (md5 !== layer.etag) {
          // Two GETs spliced together can disagree if the store ignored If-Match: start over.
          if (p.pieces > 1) {
            throw new SplicedDownloadError(layer.key);
          }
          throw new InvalidInputError(
            `${layer.key}: the bytes received have MD5 ${md5}, but the ETag says ${layer.etag}`,
            { details: { key: layer.key, md5, etag: layer.etag } },
          );
        }
      }
      p.format ??= detectLayerFormat(p.head, layer.key);
      await temp.file.sync();
      return { sha256: digests.sha256!, size: p.received, format: p.format };
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const retryable = err instanceof S3RequestError && err.retryable;
      if (!retryable || attempt + 1 >= attempts) throw err;
      if (err instanceof SplicedDownloadError) await p.reset(temp);
      const wait = backoffMs(attempt, { baseDelayMs: opts.retryBaseDelayMs }, err.retryAfterMs);
      opts.onRetry?.(err, attempt + 1, wait);
      await sleep(wait, opts.signal);
    }
  }
}

/** One GET from `p.received` on, appended to the file. Returns when the body ends. */
async function getInto(
  source: ObjectSource,
  layer: Layer,
  temp: TempBlob,
  p: Progress,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<void> {
  const attemptAbort = new AbortController();
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, attemptAbort.signal])
    : attemptAbort.signal;
  const res = await source.get(layer.key, {
    start: p.received,
    ifMatch: layer.etag,
    signal,
  });
  const body = openBody(res.body);
  // One watchdog per GET rather than a timer per chunk: no garbage on the hot path.
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  let lastByteAt = Date.now();
  let stalled: S3RequestError | undefined;
  const watchdog = setInterval(() => {
    if (Date.now() - lastByteAt < idleMs) return;
    stalled = new S3RequestError(`GET ${layer.key}: no bytes for ${idleMs} ms (stalled body)`, {
      retryable: true,
    });
    attemptAbort.abort(stalled);
    body.cancel(stalled);
  }, Math.max(10, Math.min(1000, idleMs / 4)));
  // Each read is written at once, so the file always holds every byte received and a resumed
  // GET asks only for the rest. Hashing goes a buffer at a time: `buf` holds the `filled`
  // bytes written but not yet submitted to the hasher.
  let buf: Uint8Array | undefined;
  let filled = 0;
  const submit = () => {
    p.hasher.submit(buf!.subarray(0, filled));
    buf = undefined;
    filled = 0;
  };
  // Bring the hashes level with the file. A BYOB read that fails or is cancelled keeps the
  // buffer it was given, with the bytes before `filled` in it: those are read back from the file.
  const catchUp = async () => {
    if (filled === 0) return;
    if (!buf || buf.byteLength === 0) {
      if (buf) p.hasher.release(buf);
      buf = await p.hasher.take();
      readAt(temp.file, p.received - filled, buf.subarray(0, filled));
    }
    submit();
  };
  try {
    if (p.received > 0 && res.status === 200) {
      // The server ignored the Range: take the whole object again from byte 0.
      await p.reset(temp);
    }
    if (res.etag && res.etag !== layer.etag) {
      throw new ObjectChangedError(layer.key, `ETag was ${layer.etag}, now ${res.etag}`);
    }
    if (res.objectSize > opts.maxBytes) {
      throw new InvalidInputError(
        `${layer.key}: the server announces ${res.objectSize} bytes, over the ${opts.maxBytes}-byte limit per blob`,
        { details: { key: layer.key, size: res.objectSize, maxBytes: opts.maxBytes } },
      );
    }
    // A 206's Content-Range gives the object's size: another size is another object. A short
    // 200 with the right ETag is a cut response: stream it, then resume from where it ended.
    if (
      (res.status === 206 && res.objectSize !== layer.size) ||
      (res.objectSize > layer.size)
    ) {
      throw new ObjectChangedError(layer.key, `size was ${layer.size}, now ${res.objectSize}`);
    }
    p.pieces++;
    for (;;) {
      if (!buf) {
        buf = await p.hasher.take();
        // Waiting for the hashes is not the server's silence.
        lastByteAt = Date.now();
      }
      let got: BodyRead;
      try {
        got = await body.readInto(buf, filled);
      } catch (err) {
        throw stalled ?? err;
      }
      if (stalled) throw stalled;
      if (got.buffer) buf = got.buffer;
      let bytes = got.bytes;
      if (bytes.length === 0 && got.done) break;
      lastByteAt = Date.now();
      if (
        p.received + bytes.length > layer.size || p.received + bytes.length > opts.maxBytes
      ) {
        throw new InvalidInputError(
          `${layer.key}: the server sent more than the ${layer.size} bytes listed`,
          { details: { key: layer.key, size: layer.size } },
        );
      }
      writeAll(temp.file, bytes);
      p.received += bytes.length;
      sniff(p, bytes, layer.key);
      if (got.buffer) {
        filled += bytes.length;
        if (filled === buf.length) submit();
      } else {
        // A chunk of the stream's own: copied into the hasher's buffers.
        while (bytes.length > 0) {
          buf ??= await p.hasher.take();
          const n = Math.min(bytes.length, buf.length - filled);
          buf.set(bytes.subarray(0, n), filled);
          filled += n;
          bytes = bytes.subarray(n);
          if (filled === buf.length) submit();
        }
      }
      opts.onProgress?.(p.received, layer.size);
      if (got.done) break;
    }
    await catchUp();
    if (p.received < layer.size) {
      throw new S3RequestError(
        `GET ${layer.key}: the body ended after ${p.received} of ${layer.size} bytes`,
        { retryable: true },
      );
    }
  } catch (err) {
    attemptAbort.abort();
    body.cancel();
    const e = attemptError(err, layer, opts.signal);
    // A retry resumes from the file's end, so the hashes must have seen all of it.
    if (e instanceof S3RequestError && e.retryable) await catchUp();
    throw e;
  } finally {
    clearInterval(watchdog);
    if (buf) p.hasher.release(buf);
    body.release();
  }
}

/** What a failed attempt throws: this module's errors as they are, fetch's as retryable. */
function attemptError(err: unknown, layer: Layer, signal?: AbortSignal): unknown {
  if (err instanceof InvalidInputError || err instanceof ObjectChangedError) return err;
  if (err instanceof S3RequestError || err instanceof HasherError) return err;
  if (signal?.aborted) return signal.reason;
  // fetch's errors for a reset or cut connection mid-body.
  return new S3RequestError(`GET ${layer.key}: ${(err as Error)?.message ?? err}`, {
    retryable: true,
    cause: err,
  });
}

/** Fill `into` from `file` at `offset`, then go back to the end for the next write. */
function readAt(file: Deno.FsFile, offset: number, into: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let off = 0;
  while (off < into.length) {
    const n = file.readSync(into.subarray(off));
    if (n === null) throw new Error("the temporary file is shorter than what was written to it");
    off += n;
  }
  file.seekSync(0, Deno.SeekMode.End);
}

/** Keep the first bytes for the format check, and refuse a zstd or zip blob early. */
function sniff(p: Progress, bytes: Uint8Array, key: string): void {
  if (p.head.length >= FORMAT_SNIFF_BYTES) return;
  const more = bytes.subarray(0, FORMAT_SNIFF_BYTES - p.head.length);
  const head = new Uint8Array(p.head.length + more.length);
  head.set(p.head);
  head.set(more, p.head.length);
  p.head = head;
  // After its first block, not after 4 GiB of it.
  if (p.head.length === FORMAT_SNIFF_BYTES) p.format = detectLayerFormat(p.head, key);
}

/** What one read of a {@linkcode Body} gave. */
interface BodyRead {
  /** New bytes: at `buf[offset]` when `buffer` is set, else a chunk of the stream's own. */
  bytes: Uint8Array;
  /** `buf`'s memory as a new object after a BYOB read (`buf` itself is then detached). */
  buffer?: Uint8Array;
  done: boolean;
}

/** A response body, read into our own buffers when it can be (BYOB), else chunk by chunk. */
interface Body {
  readInto(buf: Uint8Array, offset: number): Promise<BodyRead>;
  cancel(reason?: unknown): void;
  release(): void;
}

const NO_BYTES = new Uint8Array(0);

function openBody(stream: ReadableStream<Uint8Array>): Body {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    // fetch's bodies are byte streams: the socket's bytes then land in the hasher's buffers
    // directly, with no chunk allocated and copied per read.
    byob = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream.
  }
  if (byob) {
    const reader = byob;
    return {
      async readInto(buf, offset) {
        const { done, value } = await reader.read(buf.subarray(offset));
        // A cancelled stream keeps the buffer: nothing comes back.
        if (!value) return { bytes: NO_BYTES, done: true };
        return { bytes: value, buffer: new Uint8Array(value.buffer as ArrayBuffer), done };
      },
      cancel: (reason) => void reader.cancel(reason).catch(() => {}),
      release: () => reader.releaseLock(),
    };
  }
  const reader = stream.getReader();
  return {
    async readInto() {
      const { done, value } = await reader.read();
      return done ? { bytes: NO_BYTES, done } : { bytes: value, done };
    },
    cancel: (reason) => void reader.cancel(reason).catch(() => {}),
    release: () => reader.releaseLock(),
  };
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}
