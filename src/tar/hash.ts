/**
 * SHA-256 of a blob as it streams past. Large blobs are hashed on a worker thread so that
 * hashing overlaps with extraction (the hash costs as much as writing the files); chunks
 * in flight are bounded, so memory stays flat however fast the reader is.
 *
 * @example
 * ```ts
 * import { createBlobHasher } from "./hash.ts";
 * const h = createBlobHasher({ parallel: false });
 * await h.update(new TextEncoder().encode("abc"));
 * await h.digest(); // "ba7816bf..."
 * ```
 * @module
 */
import { createHash } from "node:crypto";

/** Streaming SHA-256. `update` may wait when the worker is behind. */
export interface BlobHasher {
  /** Add bytes; the caller may reuse `chunk` as soon as the returned promise (if any) settles. */
  update(chunk: Uint8Array): Promise<void> | void;
  /** Hex digest of everything added; ends the hasher. */
  digest(): Promise<string>;
  /** Release the worker, if any (safe to call after `digest`). */
  close(): void;
}

/** A hasher on this thread, or on a worker when `parallel`. */
export function createBlobHasher(opts: { parallel: boolean }): BlobHasher {
  return opts.parallel ? new WorkerHasher() : new InlineHasher();
}

class InlineHasher implements BlobHasher {
  readonly #h = createHash("sha256");
  update(chunk: Uint8Array): void {
    this.#h.update(chunk);
  }
  digest(): Promise<string> {
    return Promise.resolve(this.#h.digest("hex"));
  }
  close(): void {}
}

/**
 * Hands chunks to a worker through a ring of slots in shared memory: one copy, no message per
 * chunk. Control words: [chunks written, chunks hashed, writer done].
 */
class WorkerHasher implements BlobHasher {
  readonly #w = new Worker(new URL("./hash_worker.ts", import.meta.url).href, { type: "module" });
  readonly #ctl: Int32Array;
  readonly #data: Uint8Array;
  readonly #lens: Int32Array;
  #written = 0;
  #error: Error | null = null;
  #result: Promise<string>;

  constructor() {
    const sab = new SharedArrayBuffer(16 + SLOTS * SLOT_BYTES + SLOTS * 4);
    this.#ctl = new Int32Array(sab, 0, 4);
    this.#data = new Uint8Array(sab, 16, SLOTS * SLOT_BYTES);
    this.#lens = new Int32Array(sab, 16 + SLOTS * SLOT_BYTES, SLOTS);
    this.#result = new Promise((resolve, reject) => {
      this.#w.onmessage = (e: MessageEvent<string>) => resolve(e.data);
      this.#w.onerror = (e) => {
        e.preventDefault();
        this.#error = new Error(`hash worker failed: ${e.message}`);
        reject(this.#error);
      };
    });
    this.#result.catch(() => {}); // reported by update/digest
    this.#w.postMessage({ sab, slots: SLOTS, slotBytes: SLOT_BYTES });
  }

  async update(chunk: Uint8Array): Promise<void> {
    for (let off = 0; off < chunk.length; off += SLOT_BYTES) {
      const part = chunk.subarray(off, off + SLOT_BYTES);
      for (;;) {
        if (this.#error) throw this.#error;
        const hashed = Atomics.load(this.#ctl, 1);
        if (this.#written - hashed < SLOTS) break;
        const w = Atomics.waitAsync(this.#ctl, 1, hashed, 1000);
        if (w.async) await w.value;
      }
      const slot = this.#written % SLOTS;
      this.#data.set(part, slot * SLOT_BYTES);
      this.#lens[slot] = part.length;
      Atomics.store(this.#ctl, 0, ++this.#written);
      Atomics.notify(this.#ctl, 0);
    }
  }

  digest(): Promise<string> {
    Atomics.store(this.#ctl, 2, 1);
    Atomics.notify(this.#ctl, 0);
    return this.#result;
  }

  close(): void {
    this.#w.terminate();
  }
}

/** Ring geometry: 8 slots of 1 MiB bound the memory the hasher can hold. */
const SLOTS = 8;
const SLOT_BYTES = 1 << 20;
