/**
 * Finishes the applier's regular files on another thread: copies each file's data from the
 * blob inside the kernel (sendfile, one copy, no pass through JavaScript), then sets its owner,
 * mode and times and closes it. The main thread meanwhile parses the next entries and makes
 * the names (directories, links, the files themselves), whose order matters; a file's data and
 * metadata concern only its own inode, whatever happens to its name later, so they can trail.
 *
 * The two threads share a ring of fixed-size records in a SharedArrayBuffer: no message per
 * file. Descriptors are the process's, valid on both threads. The worker stops at its first
 * error and closes every descriptor still queued; the main thread sees the error at its next
 * {@linkcode FileWriter.push} or {@linkcode FileWriter.drain}.
 *
 * @example
 * ```ts
 * import { FileWriter } from "./file_writer.ts";
 * const w = FileWriter.start("layer.tar")!; // queues at once; the thread picks up when it runs
 * // for each file: fd from TargetDir.createFile, data at `offset` in the blob
 * // w.push({ fd, offset, size, uid: 0, gid: 0, mode: 0o644, mtime, chown: false, chmod: false }, path);
 * w.drain(); // every file written and closed, or the first error thrown
 * w.blobInode(); // the blob the thread copied from: the caller checks it is the one it parsed
 * w.close();
 * ```
 * @module
 */
import { SyscallError } from "../host/libc.ts";
import { mayLoad } from "./background_hash.ts";

/** Files queued at most (each holds a descriptor until the worker closes it). */
const CAPACITY = 256;
/** Float64 slots per record: fd, offset, size, uid, gid, mode, mtime, flags, parent, name bytes. */
export const RECORD = 10;
/** Bytes kept per record for the name of a file the worker creates (NAME_MAX and a NUL). */
export const NAME_SLOT = 256;

/**
 * Control words (Int32Array indices). Words one thread writes often sit 64 bytes from those
 * the other writes: sharing a cache line, they cost a transfer between cores at every access.
 */
export const CTL = {
  /** Records pushed (written by the main thread). */
  HEAD: 0,
  /** Records done (by the worker; published every few records and whenever it catches up). */
  TAIL: 16,
  /** 1 once the worker failed. */
  STATE: 32,
  /** The worker's errno, and the record it failed on. */
  ERRNO: 33,
  AT: 34,
  /** Which call failed (an index into {@linkcode CALLS}). */
  CALL: 35,
  /** 1 once the main thread pushes no more: the worker finishes what is queued and exits. */
  FINISH: 36,
  /** 1 once the worker opened the blob (or failed to); its inode, a float64 at INO. */
  READY: 38,
  INO: 40,
  /** 1 while the worker waits for records, 1 while the main thread waits for room: notify. */
  WORKER_WAITS: 48,
  MAIN_WAITS: 56,
} as const;
const CTL_WORDS = 64;

/** The worker publishes TAIL after this many records (and whenever it has none left). */
export const TAIL_EVERY = 8;

/** The calls the worker makes, by index, for error messages. */
export const CALLS = [
  "sendfile",
  "fchown",
  "fchmod",
  "futimens",
  "close",
  "openat",
  "open",
] as const;
/** {@linkcode CTL}.AT when the call that failed is the worker's `open` of the blob. */
export const AT_BLOB = -1;

/**
 * How long a wait for the worker may find it not started yet (its module loaded in tens of
 * milliseconds, seconds under emulation) before it is taken for dead: a worker whose module
 * fails to load says so only through an event, which the waits here do not let through.
 */
const START_TIMEOUT_MS = 60_000;

/**
 * Records between wake-ups, each way: the worker is woken once this many wait, the main
 * thread once this many slots are free (or the ring is empty).
 */
export const WAKE_BATCH = 32;

export const FLAG_CHOWN = 1;
export const FLAG_CHMOD = 2;
/** The record only closes `fd` (a directory the main thread let go while files in it queued). */
export const FLAG_CLOSE = 4;

/** One file to finish. */
export interface FileJob {
  /** The file, open for writing; -1 when the worker creates it (`parent`, `name`). */
  fd: number;
  /**
   * With `fd` -1: the directory to create the file in, as `openat(parent, name, O_CREAT |
   * O_EXCL | O_NOFOLLOW, mode & 0o777)` would on the main thread. The caller keeps `parent`
   * open until the record is done (see {@linkcode FileWriter.release}) and knows `name` is
   * free there.
   */
  parent?: number;
  name?: Uint8Array;
  /** Where its data starts in the blob (ignored when `size` is 0). */
  offset: number;
  /** Bytes to copy from the blob: 0 when the caller wrote the data itself. */
  size: number;
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
  /** The file's owner differs from the one it was created with. */
  chown: boolean;
  /** Its mode needs setting (creation could not give it: umask, setuid bits, a chown). */
  chmod: boolean;
}

/** The main thread's end of the ring. */
export class FileWriter {
  readonly #worker: Worker;
  readonly #ctl: Int32Array;
  readonly #rec: Float64Array;
  readonly #names: Uint8Array;
  /** Names of queued files, for the message when one fails. */
  readonly #paths: string[] = new Array(CAPACITY);
  #head = 0;
  /** TAIL as last read: the ring has at least this much room, perhaps more. */
  #tailSeen = 0;
  #closed = false;

  readonly #blob: string;
  /** When the worker was created, until it is known to have started. */
  #startedAt: number | undefined = performance.now();

  private constructor(
    blob: string,
    worker: Worker,
    ctl: Int32Array,
    rec: Float64Array,
    names: Uint8Array,
  ) {
    this.#blob = blob;
    this.#worker = worker;
    this.#ctl = ctl;
    this.#rec = rec;
    this.#names = names;
  }

  /** Records pushed so far: the index the next one gets. */
  get head(): number {
    return this.#head;
  }

  /** Records the worker finished: every record below this index is done. */
  get tail(): number {
    return this.#tailSeen = Atomics.load(this.#ctl, CTL.TAIL);
  }

  /** Records queued and not finished yet, give or take the last few (read every 16 pushes). */
  get backlog(): number {
    if ((this.#head & 15) === 0) this.#tailSeen = Atomics.load(this.#ctl, CTL.TAIL);
    return this.#head - this.#tailSeen;
  }

  /**
   * Close directory `fd` once every record queued so far is done (they may create files in
   * it): now when none is pending, else by a record of its own, in order.
   */
  release(fd: number, close: (fd: number) => void): void {
    // Once stopped or failed, the worker creates nothing more.
    const stopped = this.#closed || Atomics.load(this.#ctl, CTL.STATE) !== 0;
    if (stopped || this.#head === this.tail) return close(fd);
    this.#store(
      {
        fd,
        offset: 0,
        size: 0,
        uid: 0,
        gid: 0,
        mode: 0,
        mtime: 0,
        chown: false,
        chmod: false,
      },
      "",
      FLAG_CLOSE,
    );
  }

  /**
   * Start a worker copying from `blob`; files may be queued at once (the worker, which takes
   * tens of milliseconds to start, picks them up when it runs: waiting for it cost the applier
   * that long before its first entry). Undefined when the worker's module cannot be read (a
   * path-scoped `--allow-read`): the caller writes the files itself. The blob the worker opened
   * is known once it ran ({@linkcode blobInode}); the caller checks it is the file it parses.
   */
  static start(blob: string): FileWriter | undefined {
    const url = new URL("./file_writer_worker.ts", import.meta.url);
    if (!mayLoad(url)) return undefined;
    const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
    const rec = new Float64Array(new SharedArrayBuffer(CAPACITY * RECORD * 8));
    const names = new Uint8Array(new SharedArrayBuffer(CAPACITY * NAME_SLOT));
    const worker = new Worker(url, { type: "module" });
    // The worker reports its own failures in `ctl`; an error here is its module failing to
    // load, which the waits notice by the time they take (see START_TIMEOUT_MS).
    worker.onerror = (e) => e.preventDefault();
    worker.postMessage({ blob, ctl, rec, names, capacity: CAPACITY });
    return new FileWriter(blob, worker, ctl, rec, names);
  }

  /**
   * The inode of the blob the worker copies from, once it opened it (waiting for that). Throws
   * the worker's error if it failed, as when the blob could not be opened.
   */
  blobInode(): number {
    const ctl = this.#ctl;
    while (Atomics.load(ctl, CTL.READY) === 0) {
      this.#startWait();
      Atomics.wait(ctl, CTL.READY, 0, 1000);
    }
    this.#check();
    return new Float64Array(ctl.buffer, CTL.INO * 4, 1)[0];
  }

  /** Queue `job` (waiting while the ring is full). Throws the worker's error, if any. */
  push(job: FileJob, path: string): void {
    this.#store(job, path, (job.chown ? FLAG_CHOWN : 0) | (job.chmod ? FLAG_CHMOD : 0));
  }

  #store(job: FileJob, path: string, flags: number): void {
    const ctl = this.#ctl;
    this.#check();
    while (this.#head - this.#tailSeen >= CAPACITY) {
      const tail = this.tail;
      if (this.#head - tail < CAPACITY) break;
      this.#waitForTail(tail);
      this.#check();
    }
    const i = (this.#head % CAPACITY) * RECORD;
    const r = this.#rec;
    r[i] = job.fd;
    r[i + 1] = job.offset;
    r[i + 2] = job.size;
    r[i + 3] = job.uid;
    r[i + 4] = job.gid;
    r[i + 5] = job.mode;
    r[i + 6] = job.mtime;
    r[i + 7] = flags;
    const slot = this.#head % CAPACITY;
    if (job.fd < 0) {
      const name = job.name!;
      if (job.parent === undefined || name.length >= NAME_SLOT) {
        throw new TypeError("FileWriter: a file to create needs a parent and a short name");
      }
      r[i + 8] = job.parent;
      r[i + 9] = name.length;
      // A loop: names are short, and set() from an ordinary buffer into a shared one was
      // measured at several µs a call.
      const names = this.#names;
      const at = slot * NAME_SLOT;
      for (let k = 0; k < name.length; k++) names[at + k] = name[k];
    } else {
      r[i + 8] = -1;
    }
    this.#paths[slot] = path;
    Atomics.store(ctl, CTL.HEAD, ++this.#head);
    // A wake-up only when the worker sleeps, and only once a batch is queued: a wake-up per
    // file (a futex call on each side and a context switch) cost more than the file's own
    // system calls. The worker waits on HEAD's old value, so a record stored between its last
    // look and its wait makes the wait return at once (nothing is missed); `drain` wakes it
    // for a last partial batch.
    if (this.#head % WAKE_BATCH === 0 && Atomics.load(ctl, CTL.WORKER_WAITS)) {
      Atomics.notify(ctl, CTL.HEAD);
    }
  }

  /** Wait until every queued file is finished; throws the worker's first error. */
  drain(): void {
    for (;;) {
      this.#check();
      const tail = this.tail;
      if (tail >= this.#head) return;
      this.#waitForTail(tail);
    }
  }

  /** Sleep until the worker moves TAIL past `tail` (or a second passes). */
  #waitForTail(tail: number): void {
    const ctl = this.#ctl;
    this.#startWait();
    // Records short of a batch may be queued with the worker asleep.
    if (Atomics.load(ctl, CTL.WORKER_WAITS)) Atomics.notify(ctl, CTL.HEAD);
    Atomics.store(ctl, CTL.MAIN_WAITS, 1);
    Atomics.wait(ctl, CTL.TAIL, tail, 1000);
    Atomics.store(ctl, CTL.MAIN_WAITS, 0);
  }

  /**
   * Stop the worker. Queued files not yet finished are closed unwritten (after a failure or an
   * abort, whose target the caller discards); safe to call more than once.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const ctl = this.#ctl;
    Atomics.store(ctl, CTL.FINISH, 1);
    Atomics.notify(ctl, CTL.HEAD);
    // The worker closes what is queued and exits its loop; wait so no descriptor outlives this.
    for (
      let tail = Atomics.load(ctl, CTL.TAIL);
      tail < this.#head;
      tail = Atomics.load(ctl, CTL.TAIL)
    ) {
      Atomics.store(ctl, CTL.MAIN_WAITS, 1);
      const r = Atomics.wait(ctl, CTL.TAIL, tail, 5000);
      Atomics.store(ctl, CTL.MAIN_WAITS, 0);
      if (r === "timed-out") break;
    }
    this.#worker.terminate();
  }

  #check(): void {
    const ctl = this.#ctl;
    if (Atomics.load(ctl, CTL.STATE) !== 1) return;
    const at = Atomics.load(ctl, CTL.AT);
    const cause = new SyscallError(
      CALLS[Atomics.load(ctl, CTL.CALL)],
      Atomics.load(ctl, CTL.ERRNO),
    );
    // Not the layer's doing (this thread had opened the same path): no FileWriteError, which
    // would blame an entry.
    if (at === AT_BLOB) {
      throw new Error(`the file writer could not open ${this.#blob}: ${cause.message}`, { cause });
    }
    throw new FileWriteError(this.#paths[at % CAPACITY], cause);
  }

  /** Before a wait for the worker: throw if it should have started long ago and has not. */
  #startWait(): void {
    if (this.#startedAt === undefined) return;
    if (Atomics.load(this.#ctl, CTL.READY) !== 0) {
      this.#startedAt = undefined;
      return;
    }
    if (performance.now() - this.#startedAt > START_TIMEOUT_MS) {
      throw new Error(`the file writer thread did not start in ${START_TIMEOUT_MS / 1000} s`);
    }
  }
}

/** Finishing file `path` failed on the worker (`cause` is the system call's error). */
export class FileWriteError extends Error {
  constructor(readonly path: string, override readonly cause: SyscallError) {
    super(`${path}: ${cause.message}`);
  }
}
