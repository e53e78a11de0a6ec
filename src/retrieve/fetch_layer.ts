/**
 * Downloading one layer into the blob store: streaming, verified, bounded, resumable.
 *
 * The bytes go to a temporary file in the state directory while SHA-256 (the blob's name) and
 * MD5 (checked against a single-part ETag) are computed as they arrive; the file is fsynced
 * and renamed into the store only after every check passed. An interrupted body resumes with
 * `Range` + `If-Match`; a changed object ends in {@linkcode ObjectChangedError}, so the caller
 * resolves the image again instead of splicing two versions. Memory stays flat: one chunk at
 * a time, whatever the blob's size.
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
import { createHash, type Hash } from "node:crypto";
import type { BlobStore, TempBlob } from "../blobs/store.ts";
import { detectLayerFormat, FORMAT_SNIFF_BYTES, type LayerFormat } from "../image/format.ts";
import type { Layer } from "../image/manifest.ts";
import { InvalidInputError } from "../errors.ts";
import { ObjectChangedError, S3_RETRYABLE, S3RequestError, s3RetryPolicy } from "../s3/errors.ts";
import { withRetries } from "../retry.ts";
import type { ObjectSource } from "./source.ts";

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
  // A download of this object cut short by a process that died goes on from its bytes: a
  // blob's bytes cross the network once, whatever killed whom (its hashes check them).
  const object = `${layer.etag}:${layer.size}`;
  // Only an MD5 ETag can vouch for bytes another process wrote.
  const adopted = MD5_ETAG.test(layer.etag) ? await blobs.adoptTemp(object) : undefined;
  const temp = adopted ?? await blobs.createTemp(object);
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
  sha256: Hash = createHash("sha256");
  md5: Hash = createHash("md5");
  head = new Uint8Array(0);
  format?: LayerFormat;
  /** GETs whose bytes are in the file: more than one means a resumed download. */
  pieces = 0;

  /** Bytes a dead process left in the file (adopted), already hashed here. */
  resumed = false;

  /** Take in what `temp` holds (a prefix of the object's bytes), to go on after it. */
  async resume(temp: TempBlob, layer: Layer): Promise<void> {
    const size = (await temp.file.stat()).size;
    if (size === 0) return;
    if (size > layer.size) return await this.reset(temp);
    await temp.file.seek(0, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 20);
    while (this.received < size) {
      const n = await temp.file.read(buf.subarray(0, Math.min(buf.length, size - this.received)));
      if (n === null || n === 0) break;
      this.add(buf.subarray(0, n), layer.key);
    }
    await temp.file.truncate(this.received);
    await temp.file.seek(this.received, Deno.SeekMode.Start);
    this.resumed = this.received > 0;
  }

  /** Take in the next bytes of the object (already in the file). */
  add(chunk: Uint8Array, key: string): void {
    this.sha256.update(chunk);
    this.md5.update(chunk);
    if (this.head.length < FORMAT_SNIFF_BYTES) {
      const more = chunk.subarray(0, FORMAT_SNIFF_BYTES - this.head.length);
      const head = new Uint8Array(this.head.length + more.length);
      head.set(this.head);
      head.set(more, this.head.length);
      this.head = head;
      // Refuse a zstd or zip blob after its first block, not after 4 GiB of it.
      if (this.head.length === FORMAT_SNIFF_BYTES) this.format = detectLayerFormat(head, key);
    }
    this.received += chunk.length;
  }

  async reset(temp: TempBlob): Promise<void> {
    this.resumed = false;
    this.received = 0;
    this.sha256 = createHash("sha256");
    this.md5 = createHash("md5");
    this.head = new Uint8Array(0);
    this.format = undefined;
    this.pieces = 0;
    await temp.file.truncate(0);
    await temp.file.seek(0, Deno.SeekMode.Start);
  }
}

async function download(
  source: ObjectSource,
  layer: Layer,
  temp: TempBlob,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<Omit<FetchedLayer, "downloaded">> {
  const p = new Progress();
  await p.resume(temp, layer);
  try {
    return await withRetries(() => attempt(source, layer, temp, p, opts), {
      policy: s3RetryPolicy(opts.attempts ?? 6, opts.retryBaseDelayMs),
      ...S3_RETRYABLE,
      onRetry: opts.onRetry,
      signal: opts.signal,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw err;
  }
}

/** One attempt: the bytes still missing, then the checks of the whole. */
async function attempt(
  source: ObjectSource,
  layer: Layer,
  temp: TempBlob,
  p: Progress,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<Omit<FetchedLayer, "downloaded">> {
  if (p.received < layer.size || layer.size === 0) await getInto(source, layer, temp, p, opts);
  if (MD5_ETAG.test(layer.etag)) {
    const md5 = p.md5.digest("hex");
    if (md5 !== layer.etag) {
      // Two GETs spliced together can disagree if the store ignored If-Match, and a dead
      // process's bytes can be short of what it wrote (power loss): start over.
      if (p.pieces > 1 || p.resumed) {
        await p.reset(temp);
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
  return { sha256: p.sha256.digest("hex"), size: p.received, format: p.format };
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
  const res = await source.get(layer.key, { start: p.received, ifMatch: layer.etag, signal });
  const body = openBody(res.body);
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  const watchdog = new Watchdog(idleMs, () => {
    const stalled = new S3RequestError(
      `GET ${layer.key}: no bytes for ${idleMs} ms (stalled body)`,
      { retryable: true },
    );
    attemptAbort.abort(stalled);
    void body.cancel(stalled);
    return stalled;
  });
  try {
    await checkResponse(res, layer, temp, p, opts.maxBytes);
    p.pieces++;
    await receive(body, watchdog, layer, temp, p, opts);
  } catch (err) {
    attemptAbort.abort();
    await body.cancel();
    if (err instanceof InvalidInputError || err instanceof ObjectChangedError) throw err;
    if (err instanceof S3RequestError) throw err;
    if (opts.signal?.aborted) throw opts.signal.reason;
    // fetch's errors for a reset or cut connection mid-body.
    throw new S3RequestError(`GET ${layer.key}: ${(err as Error)?.message ?? err}`, {
      retryable: true,
      cause: err,
    });
  } finally {
    watchdog.stop();
    body.release();
  }
}

/**
 * Whether a GET's response is the listed object from where the file ends: an ignored Range
 * starts the file again from byte 0; another ETag or size is another object.
 */
async function checkResponse(
  res: { status: number; etag?: string; objectSize: number },
  layer: Layer,
  temp: TempBlob,
  p: Progress,
  maxBytes: number,
): Promise<void> {
  if (p.received > 0 && res.status === 200) {
    // The server ignored the Range: take the whole object again from byte 0.
    await p.reset(temp);
  }
  if (res.etag && res.etag !== layer.etag) {
    throw new ObjectChangedError(layer.key, `ETag was ${layer.etag}, now ${res.etag}`);
  }
  if (res.objectSize > maxBytes) {
    throw new InvalidInputError(
      `${layer.key}: the server announces ${res.objectSize} bytes, over the ${maxBytes}-byte limit per blob`,
      { details: { key: layer.key, size: res.objectSize, maxBytes } },
    );
  }
  // A 206's Content-Range gives the object's size: another size is another object. A short
  // 200 with the right ETag is a cut response: stream it, then resume from where it ended.
  if ((res.status === 206 && res.objectSize !== layer.size) || (res.objectSize > layer.size)) {
    throw new ObjectChangedError(layer.key, `size was ${layer.size}, now ${res.objectSize}`);
  }
}

/** The body's bytes into the file and the hashes, until it ends (short: retryable). */
async function receive(
  body: Body,
  watchdog: Watchdog,
  layer: Layer,
  temp: TempBlob,
  p: Progress,
  opts: FetchLayerOptions & { maxBytes: number },
): Promise<void> {
  for (;;) {
    let value: Uint8Array | undefined;
    try {
      value = await body.read();
    } catch (err) {
      throw watchdog.stalled ?? err;
    }
    if (watchdog.stalled) throw watchdog.stalled;
    if (value === undefined) break;
    watchdog.touch();
    if (p.received + value.length > layer.size || p.received + value.length > opts.maxBytes) {
      throw new InvalidInputError(
        `${layer.key}: the server sent more than the ${layer.size} bytes listed`,
        { details: { key: layer.key, size: layer.size } },
      );
    }
    writeAll(temp.file, value);
    p.add(value, layer.key);
    opts.onProgress?.(p.received, layer.size);
  }
  if (p.received < layer.size) {
    throw new S3RequestError(
      `GET ${layer.key}: the body ended after ${p.received} of ${layer.size} bytes`,
      { retryable: true },
    );
  }
}

/**
 * Gives up on a body that sends nothing for `idleMs`: one timer per GET rather than one per
 * chunk, so no garbage on the hot path.
 */
class Watchdog {
  /** The error `onStall` made, once the body stalled. */
  stalled?: Error;
  #lastByteAt = Date.now();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(idleMs: number, onStall: () => Error) {
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastByteAt < idleMs) return;
      this.stalled = onStall();
    }, Math.max(10, Math.min(1000, idleMs / 4)));
  }

  /** Bytes arrived. */
  touch(): void {
    this.#lastByteAt = Date.now();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Bytes per read of a byte-stream body; reads return what has arrived, up to this. */
const READ_BUFFER_BYTES = 1024 * 1024;

/** A response body, read chunk by chunk; each chunk is valid until the next read. */
interface Body {
  /** The next bytes, or undefined at the end. */
  read(): Promise<Uint8Array | undefined>;
  /** Settles once the stream is cancelled (never rejects). */
  cancel(reason?: unknown): Promise<void>;
  release(): void;
}

/**
 * fetch's bodies are byte streams: read with a BYOB reader, the socket's bytes land in one
 * reused buffer instead of a fresh chunk per read, which cut the receiving thread's CPU time
 * by about a tenth (bench/fetch.ts). Other streams are read as they come.
 */
function openBody(stream: ReadableStream<Uint8Array>): Body {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream.
  }
  if (byob) {
    const reader = byob;
    let buf = new Uint8Array(READ_BUFFER_BYTES);
    return {
      async read() {
        // The read takes the buffer over; it comes back, as a new object, with the bytes.
        const { done, value } = await reader.read(buf);
        if (value) buf = new Uint8Array(value.buffer as ArrayBuffer);
        // The closing read carries no bytes; any it did carry are still counted.
        return done && !value?.length ? undefined : value;
      },
      cancel: (reason) => reader.cancel(reason).catch(() => {}),
      release: () => reader.releaseLock(),
    };
  }
  const reader = stream.getReader();
  return {
    async read() {
      const { done, value } = await reader.read();
      return done ? undefined : value;
    },
    cancel: (reason) => reader.cancel(reason).catch(() => {}),
    release: () => reader.releaseLock(),
  };
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}
