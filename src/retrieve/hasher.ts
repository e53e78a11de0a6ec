/**
 * Hashing a download as it arrives, with the digests computed on other threads when that helps.
 *
 * A download is CPU-bound on a two-core machine that also runs the S3 server: receiving,
 * writing, SHA-256 and MD5 (MD5 alone costs more than the receive and the write together) all
 * ran on the thread that reads the socket, so the socket waited for the hashes. A
 * {@linkcode StreamHasher} can hand each filled buffer to a worker thread instead (transferred,
 * not copied) and get it back once hashed: the reader goes on receiving into other buffers
 * meanwhile. Buffers come from a fixed pool, so memory stays bounded: when every buffer is
 * still being hashed, {@linkcode StreamHasher.take} waits (backpressure on the socket).
 *
 * Order is kept because the worker reads its one message queue in order. The algorithms not
 * given to the worker run on the calling thread, in {@linkcode StreamHasher.submit}; with none
 * given, no worker is started, which is cheaper for small blobs.
 *
 * @example
 * ```ts
 * import { StreamHasher } from "./hasher.ts";
 * const h = new StreamHasher({ algorithms: ["sha256", "md5"], offThread: ["sha256", "md5"] });
 * try {
 *   const buf = await h.take();
 *   buf.set([1, 2, 3]);
 *   h.submit(buf.subarray(0, 3));
 *   const { sha256, md5 } = await h.digest();
 * } finally {
 *   h.close();
 * }
 * ```
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** A hash {@linkcode StreamHasher} can compute. */
export type HashAlgorithm = "sha256" | "md5";

/** How a {@linkcode StreamHasher} is laid out. */
export interface StreamHasherOptions {
  /** Every digest wanted. */
  algorithms: readonly HashAlgorithm[];
  /** The algorithms computed on a worker thread (default none: no worker). */
  offThread?: readonly HashAlgorithm[];
  /** Bytes per buffer (default 1 MiB). */
  bufferSize?: number;
  /** Buffers in the pool, so at most this many are being received or hashed (default 8). */
  buffers?: number;
}

/** Hex digests, by algorithm. */
export type Digests = Partial<Record<HashAlgorithm, string>>;

/** A hash worker died or refused a message: the download cannot be verified. */
export class HasherError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = "HasherError";
  }
}

// Messages to the worker and back.
type WorkerInit = { init: readonly HashAlgorithm[] };
type WorkerData = { buf: ArrayBuffer; len: number };
type WorkerDigest = { digest: Digests };

/**
 * The body of the hash worker. It runs in a worker created from a `blob:` URL built from this
 * function's source (so it must not refer to anything outside itself): loading a worker from a
 * module file would need read access to that file, which the fetch command need not have (the
 * benchmark grants reads of the state directory only), and `deno compile` would have to be
 * told to embed it.
 */
function workerMain(
  scope: {
    onmessage: ((e: MessageEvent) => void) | null;
    postMessage(m: unknown, t?: Transferable[]): void;
  },
  hashOf: (algo: string) => { update(b: Uint8Array): unknown; digest(enc: "hex"): string },
): void {
  let hashes: [string, ReturnType<typeof hashOf>][] = [];
  scope.onmessage = (e: MessageEvent) => {
    const m = e.data;
    if (m.buf) {
      const view = new Uint8Array(m.buf, 0, m.len);
      for (const [, h] of hashes) h.update(view);
      scope.postMessage(m, [m.buf]);
    } else if (m.digest) {
      const digest = { ...m.digest };
      for (const [algo, h] of hashes) digest[algo] = h.digest("hex");
      scope.postMessage({ digest });
    } else if (m.init) {
      hashes = m.init.map((a: string) => [a, hashOf(a)]);
    }
  };
}

const WORKER_SOURCE =
  `import { createHash } from "node:crypto";\n(${workerMain.toString()})(self, (a) => createHash(a));\n`;
let workerUrl: string | undefined;

/** Digests of a stream of buffers, optionally computed off this thread; see the module doc. */
export class StreamHasher {
  readonly bufferSize: number;
  readonly #local: [HashAlgorithm, Hash][];
  #worker?: Worker;
  /** Buffers ready to be filled. */
  readonly #free: ArrayBuffer[] = [];
  /** Buffers handed out or in the pipeline, up to the pool's size. */
  #allocated = 0;
  readonly #maxBuffers: number;
  #waiting: { resolve: (b: ArrayBuffer) => void; reject: (e: Error) => void }[] = [];
  #digestWaiter?: { resolve: (d: Digests) => void; reject: (e: Error) => void };
  #failed?: Error;
  #closed = false;

  constructor(opts: StreamHasherOptions) {
    this.bufferSize = opts.bufferSize ?? 1024 * 1024;
    this.#maxBuffers = Math.max(1, opts.buffers ?? 8);
    const offThread = opts.offThread ?? [];
    for (const a of offThread) {
      if (!opts.algorithms.includes(a)) throw new TypeError(`${a} is off-thread but not wanted`);
    }
    this.#local = opts.algorithms.filter((a) => !offThread.includes(a))
      .map((a) => [a, createHash(a)]);
    if (offThread.length === 0) return;
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    const w = new Worker(workerUrl, { type: "module", name: `hash ${offThread.join("+")}` });
    w.onerror = (e) => {
      e.preventDefault();
      this.#fail(new HasherError(`hash worker failed: ${e.message}`));
    };
    w.onmessageerror = () => this.#fail(new HasherError("hash worker sent an unreadable message"));
    w.onmessage = (e) => this.#onReturn(e.data);
    const init: WorkerInit = { init: offThread };
    w.postMessage(init);
    this.#worker = w;
  }

  /**
   * A buffer of {@linkcode bufferSize} bytes to fill (its previous content is garbage); waits
   * while every buffer of the pool is still being hashed.
   */
  take(): Promise<Uint8Array> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new HasherError("the hasher is closed"));
    const free = this.#free.pop();
    if (free) return Promise.resolve(new Uint8Array(free));
    if (this.#allocated < this.#maxBuffers) {
      this.#allocated++;
      return Promise.resolve(new Uint8Array(this.bufferSize));
    }
    return new Promise<ArrayBuffer>((resolve, reject) => this.#waiting.push({ resolve, reject }))
      .then((b) => new Uint8Array(b));
  }

  /**
   * Hash `view` (a prefix of a buffer from {@linkcode take}) after everything submitted
   * before it. The buffer belongs to the hasher from here on: do not touch it again.
   */
  submit(view: Uint8Array): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new HasherError("the hasher is closed");
    if (view.byteOffset !== 0 || view.buffer.byteLength !== this.bufferSize) {
      throw new TypeError("submit a prefix of a buffer from take()");
    }
    for (const [, h] of this.#local) h.update(view);
    if (!this.#worker) {
      this.#release(view.buffer as ArrayBuffer);
      return;
    }
    const msg: WorkerData = { buf: view.buffer as ArrayBuffer, len: view.length };
    this.#worker.postMessage(msg, [msg.buf]);
  }

  /**
   * Return a buffer from {@linkcode take} unhashed. A buffer that was detached meanwhile (given
   * to a stream that kept it) is written off, and a new one may be allocated in its place.
   */
  release(buf: Uint8Array): void {
    if (this.#closed) return;
    if (buf.buffer.byteLength === this.bufferSize) this.#release(buf.buffer as ArrayBuffer);
    else if (buf.buffer.byteLength === 0) {
      const waiter = this.#waiting.shift();
      if (waiter) waiter.resolve(new ArrayBuffer(this.bufferSize));
      else this.#allocated--;
    }
  }

  /** The digests of every byte submitted, once the worker is through. Call once. */
  digest(): Promise<Digests> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new HasherError("the hasher is closed"));
    if (this.#digestWaiter) return Promise.reject(new HasherError("digest() called twice"));
    const local: Digests = {};
    for (const [algo, h] of this.#local) local[algo] = h.digest("hex");
    if (!this.#worker) return Promise.resolve(local);
    const worker = this.#worker;
    return new Promise<Digests>((resolve, reject) => {
      this.#digestWaiter = { resolve, reject };
      const msg: WorkerDigest = { digest: local };
      worker.postMessage(msg);
    });
  }

  /** Stop the worker; pending calls reject. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker?.terminate();
    this.#rejectAll(this.#failed ?? new HasherError("the hasher is closed"));
  }

  #onReturn(m: WorkerData | WorkerDigest): void {
    if ("buf" in m) {
      this.#release(m.buf);
    } else {
      const waiter = this.#digestWaiter;
      this.#digestWaiter = undefined;
      waiter?.resolve(m.digest);
    }
  }

  #release(buf: ArrayBuffer): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(buf);
    else this.#free.push(buf);
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    this.#worker?.terminate();
    this.#rejectAll(this.#failed);
  }

  #rejectAll(err: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.reject(err);
    const d = this.#digestWaiter;
    this.#digestWaiter = undefined;
    d?.reject(err);
  }
}
