/**
 * The bytes of a layer file as a tar stream: plain or gzip (detected by magic bytes, inflated
 * as a stream in bounded windows), read in large chunks with bounded memory whatever the
 * compression ratio, optionally hashed (SHA-256 of the blob as stored, i.e. of the compressed
 * bytes).
 *
 * @example
 * ```ts
 * import { openLayerSource } from "./source.ts";
 * const src = await openLayerSource("layer.tar", { sha256: true });
 * for (let c = await src.next(); c; c = await src.next()) { // c: the next chunk of tar bytes
 * }
 * await src.sha256(); // "e3b0c442..."
 * src.close();
 * ```
 * @module
 */
import type { Hash } from "node:crypto";
import { COST_BOUNDS } from "./limits.ts";
import { isGzip, sniffOtherCompression } from "./magic.ts";
import { TarViolation } from "./violation.ts";

/**
 * Read size of a plain tar. Small, because the applier needs only the headers: a file's data
 * that runs past the chunk at hand is skipped (a seek), not copied out of the page cache, and
 * a small buffer stays in the core's cache while it is parsed. Measured on two layers
 * (bench/README.md, 2026-12-04): 64 KiB reads cost 30-75 ms less CPU than 1 MiB ones on
 * 398 MB of /usr trees, 265 ms less on 120,000 small files, for several times the calls.
 */
export const PLAIN_CHUNK = 64 << 10;
/** Read size right after a seek: the next header may be followed by another skip. */
const AFTER_SEEK = 16 << 10;
/** Read size of a gzip blob, all of which the decompressor needs. */
const GZIP_CHUNK = 1 << 20;

/** A readable tar stream. Chunks returned by `next` stay valid only until the next call. */
export interface LayerSource {
  /** How the file is compressed. */
  readonly compression: "none" | "gzip";
  /** Size of the file on disk. */
  readonly fileBytes: number;
  /** Bytes of the file read so far (compressed bytes for gzip), for progress. */
  readonly fileBytesRead: number;
  /** The next chunk of tar bytes, or null at the end of the stream. */
  next(): Promise<Uint8Array | null>;
  /**
   * Skip `n` tar bytes without reading them, when the file is plain and not being hashed.
   * Returns false when skipping is not possible (the caller reads instead). Throws a
   * `truncated` violation when the file ends first.
   */
  skip(n: number): boolean;
  /** Hex SHA-256 of the whole file; only after `next` returned null, only with `sha256`. */
  sha256(): Promise<string | undefined>;
  close(): void;
}

/** Open `path` as a tar stream. */
export async function openLayerSource(
  path: string,
  opts: { sha256?: boolean } = {},
): Promise<LayerSource> {
  const file = Deno.openSync(path, { read: true });
  try {
    const size = file.statSync().size;
    const head = new Uint8Array(8);
    const n = file.readSync(head) ?? 0;
    file.seekSync(0, Deno.SeekMode.Start);
    const other = sniffOtherCompression(head.subarray(0, n));
    if (other && size < 1024) {
      // Too short to be a tar (whose end marker alone is 1024 bytes): name the format now; a
      // longer file is sniffed only if its first header is not a valid tar header.
      throw new TarViolation({
        rule: "compression-unsupported",
        entry: "",
        message: `the file is ${other}-compressed; only plain and gzip-compressed tar are accepted`,
      });
    }
    // Loaded only to hash here: node:crypto brings up Node's compatibility layer, tens of
    // milliseconds at the start of every command that reads a layer.
    const hash = opts.sha256 ? (await import("node:crypto")).createHash("sha256") : undefined;
    if (isGzip(head.subarray(0, n))) {
      return await GzipSource.open(file, size, hash);
    }
    return new PlainSource(file, size, hash);
  } catch (err) {
    file.close();
    throw err;
  }
}

class PlainSource implements LayerSource {
  readonly compression = "none";
  fileBytesRead = 0;
  readonly #buf = new Uint8Array(PLAIN_CHUNK);
  #seeked = false;
  #closed = false;

  constructor(readonly file: Deno.FsFile, readonly fileBytes: number, readonly hash?: Hash) {}

  // Synchronous reads are several times faster in Deno; the interface stays a promise because
  // the gzip source is a stream.
  next(): Promise<Uint8Array | null> {
    // Right after a seek, read a little: the next header may be followed by another skip.
    const n = this.file.readSync(this.#seeked ? this.#buf.subarray(0, AFTER_SEEK) : this.#buf);
    this.#seeked = false;
    if (n === null || n === 0) return Promise.resolve(null);
    this.fileBytesRead += n;
    const chunk = this.#buf.subarray(0, n);
    this.hash?.update(chunk);
    return Promise.resolve(chunk);
  }

  skip(n: number): boolean {
    if (this.hash) return false;
    if (this.fileBytesRead + n > this.fileBytes) {
      throw new TarViolation({
        rule: "truncated",
        entry: "",
        message: `the archive ends inside an entry's data (file is ${this.fileBytes} bytes)`,
      });
    }
    this.file.seekSync(n, Deno.SeekMode.Current);
    this.fileBytesRead += n;
    this.#seeked = true;
    return true;
  }

  sha256(): Promise<string | undefined> {
    return Promise.resolve(this.hash?.digest("hex"));
  }

  close(): void {
    if (!this.#closed) this.file.close();
    this.#closed = true;
  }
}

class GzipSource implements LayerSource {
  readonly compression = "gzip";
  fileBytesRead = 0;
  #closed = false;
  #reader!: ReadableStreamDefaultReader<Uint8Array>;
  /** Why reading the file failed, if it did (an I/O error, not the layer's fault). */
  #readError: unknown;
  /** The chunk `next` returned last (a buffer of its own, from the decompressor). */
  #last: Uint8Array | undefined;

  private constructor(
    readonly file: Deno.FsFile,
    readonly fileBytes: number,
    readonly hash?: Hash,
  ) {}

  static open(file: Deno.FsFile, size: number, hash?: Hash): Promise<GzipSource> {
    const src = new GzipSource(file, size, hash);
    const inflate = new DecompressionStream("gzip");
    src.#reader = inflate.readable.getReader();
    src.#pump(inflate.writable.getWriter());
    return Promise.resolve(src);
  }

  /**
   * Feed the decompressor. The file is read (and hashed) in large chunks but handed over in
   * small pieces: the decompressor returns everything one piece inflates to as one buffer,
   * and deflate expands up to ~1032:1, so the piece size is what bounds a decompressed chunk
   * (a 1 MiB piece of a gzip of zeros made one of 1 GiB). Pieces are copies: the read buffer
   * is reused, and views of it were measured to keep the decompressor's output alive (RSS grew
   * with the stream). Written directly rather than through `pipeThrough`, whose per-piece
   * overhead cost ~5% of inflating a real layer at this piece size. The decompressor's
   * backpressure (one piece queued, one chunk ahead) keeps the rest bounded.
   */
  async #pump(w: WritableStreamDefaultWriter<BufferSource>): Promise<void> {
    const buf = new Uint8Array(GZIP_CHUNK);
    const piece = COST_BOUNDS.inflateInputBytes;
    try {
      for (;;) {
        if (this.#closed) return;
        let n: number | null;
        try {
          n = this.file.readSync(buf);
        } catch (err) {
          this.#readError = err;
          w.abort(err).catch(() => {});
          return;
        }
        if (n === null || n === 0) break;
        this.fileBytesRead += n;
        this.hash?.update(buf.subarray(0, n));
        for (let off = 0; off < n; off += piece) {
          await w.ready;
          if (this.#closed) return;
          // A failed write errors the readable side too: `next` reports it.
          w.write(buf.slice(off, Math.min(n, off + piece))).catch(() => {});
        }
      }
      await w.ready;
      w.close().catch(() => {});
    } catch {
      // `ready` rejects once the stream failed (corrupt data) or was cancelled (closed):
      // `next` reports the first, the second needs nothing.
    }
  }

  async next(): Promise<Uint8Array | null> {
    // The previous chunk is dead (chunks stay valid only until the next call): free its memory
    // now rather than when the collector gets to it, which was measured to lag by tens of
    // MiB when inflating fast.
    release(this.#last);
    this.#last = undefined;
    try {
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#last = value;
      return value;
    } catch (err) {
      if (this.#readError !== undefined) throw this.#readError;
      throw new TarViolation({
        rule: "gzip-corrupt",
        entry: "",
        message:
          `the gzip stream is corrupt, truncated, followed by other data or made of several members (${
            (err as Error).message
          })`,
      });
    }
  }

  skip(_n: number): boolean {
    return false;
  }

  sha256(): Promise<string | undefined> {
    return Promise.resolve(this.hash?.digest("hex"));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    this.file.close();
  }
}

/**
 * Free the memory of `chunk`'s buffer at once, by detaching it (`ArrayBuffer.transfer`); a no-op
 * where that is missing. Only for a chunk that owns its whole buffer and that nothing else uses.
 */
function release(chunk: Uint8Array | undefined): void {
  if (!chunk || chunk.byteOffset !== 0 || chunk.byteLength !== chunk.buffer.byteLength) return;
  const buf = chunk.buffer as { transfer?: (n: number) => ArrayBuffer; detached?: boolean };
  if (buf.transfer && !buf.detached) buf.transfer(0);
}
