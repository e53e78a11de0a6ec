/**
 * SHA-256 of a blob computed on another thread ({@linkcode ./sha256_worker.ts}) while the
 * caller parses it: hashing costs about as much CPU as parsing, and the second core is
 * otherwise idle. The worker reports the identity of the file it read, so the caller can check
 * it hashed the bytes it parsed.
 *
 * Until the caller says it waits for the digest ({@linkcode hurry}), the worker runs only on
 * CPU time nothing else of this process (or the host) wants: on two cores, the applier's
 * thread and its file writer already keep both busy most of the time, and a hash taking its
 * share of them delayed the applier's thread, which sets the pace, by as much. Left idle to
 * the end, though, it fell behind: what it had still to hash then ran alone on one core for up
 * to a tenth of the pass. So the caller reports how far it got ({@linkcode pace}), and the
 * worker gets its full share while it is more than {@linkcode PACE_LAG_MIB} behind, until it
 * is ahead again.
 *
 * @example
 * ```ts
 * import { hashInBackground } from "./background_hash.ts";
 * const h = hashInBackground("layer.tar");
 * // ... parse the layer, calling h.pace(bytesParsed) now and then, then:
 * h.hurry();
 * const { sha256, identity } = await h.result;
 * ```
 * @module
 */
import { fileIdentity } from "../host/file_identity.ts";
import { libc } from "../host/libc.ts";

/**
 * How far behind the caller (MiB of the blob) the digest may fall before its thread runs as
 * any other: a lag the thread makes up in idle time by the end, on the /usr trees layer of
 * bench/tar.ts (8, 16, 64 and 128 did no better).
 */
export const PACE_LAG_MIB = 32;

/**
 * Whether the hashing thread, idle (`idle`) or not, should change: false to run as any other
 * (it is more than {@linkcode PACE_LAG_MIB} behind), true to go idle again (it is ahead),
 * undefined to stay as it is.
 */
export function paceChange(
  idle: boolean,
  hashedMiB: number,
  parsedMiB: number,
): boolean | undefined {
  if (idle && hashedMiB + PACE_LAG_MIB < parsedMiB) return false;
  if (!idle && hashedMiB > parsedMiB) return true;
  return undefined;
}

/**
 * SHA-256 of the file at `path`, computed on another thread; `pace` with the bytes of it the
 * caller got through (see the module doc), `hurry` before awaiting `result` (the worker gets
 * its full share of the CPU from then on), `cancel` stops it. Where no worker
 * can start (its module unreadable under a path-scoped `--allow-read`), the digest is computed
 * on this thread when `result` is awaited: slower, the same answer. So it is with `inline`
 * (for a blob too small to be worth a thread).
 */
export function hashInBackground(path: string, opts: { inline?: boolean } = {}): {
  result: Promise<{ sha256: string; identity: string }>;
  pace(bytes: number): void;
  hurry(): void;
  cancel(): void;
} {
  const url = new URL("./sha256_worker.ts", import.meta.url);
  if (opts.inline || !mayLoad(url)) {
    const result = hashHere(path);
    result.catch(() => {});
    return { result, pace() {}, hurry() {}, cancel() {} };
  }
  const worker = new Worker(url, { type: "module" });
  // The worker's thread, while its priority is ours to set (forgotten before the worker is let
  // go: its id may then name another thread), and whether it is idle now; whether the caller
  // waits already. MiB hashed so far, written by the worker.
  let thread: number | undefined;
  let idle = false;
  let hurried = false;
  const hashed = new Int32Array(new SharedArrayBuffer(4));
  const result = new Promise<{ sha256: string; identity: string }>((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.tid !== undefined) {
        if (!hurried && idleThread(e.data.tid, true)) {
          thread = e.data.tid;
          idle = true;
        }
        return;
      }
      thread = undefined;
      worker.terminate();
      if (e.data.error) reject(new Error(`hashing ${path}: ${e.data.error}`));
      else resolve(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      thread = undefined;
      worker.terminate();
      reject(new Error(`hashing ${path}: ${e.message}`));
    };
  });
  result.catch(() => {}); // awaited only when the layer was read to the end
  worker.postMessage({ path, hashed });
  const hurry = () => {
    hurried = true;
    // Refused (an unprivileged process whose RLIMIT_NICE forbids nice 0), it stays idle: the
    // digest then waits for CPU time nothing else wants.
    if (thread !== undefined && idle) idleThread(thread, false);
    thread = undefined;
  };
  return {
    result: result.catch(() => hashHere(path)),
    pace(bytes) {
      // A change the kernel refuses (back from idle, unprivileged) is tried again at the next
      // call: one failed system call a MiB.
      if (thread === undefined) return;
      const change = paceChange(idle, Atomics.load(hashed, 0), bytes / (1 << 20));
      if (change !== undefined && idleThread(thread, change)) idle = change;
    },
    hurry,
    cancel() {
      // An idle thread on a busy host could wait long for the CPU time to stop.
      hurry();
      worker.terminate();
    },
  };
}

/** Set thread `tid`'s policy; false when the kernel refused. */
function idleThread(tid: number, idle: boolean): boolean {
  try {
    libc().idleThread(tid, idle);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a worker module at `url` can be loaded: a local file needs read access (Deno prints
 * an uncaught error for a worker it cannot load, so ask first).
 */
export function mayLoad(url: URL): boolean {
  if (url.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: decodeURIComponent(url.pathname) })
    .state === "granted";
}

/** The same digest and identity, computed on this thread. */
async function hashHere(path: string): Promise<{ sha256: string; identity: string }> {
  const { createHash } = await import("node:crypto");
  return hashFile(path, createHash);
}

/**
 * Read size: chunks that stay in the core's cache between the copy and the hash (the
 * /usr-trees layer of bench/tar.ts hashed in 310-323 ms by 128 KiB, 341-361 ms by 1 MiB).
 */
const READ = 128 << 10;

/**
 * The SHA-256 of the file at `path` and the identity of the file read, on the calling thread
 * (the worker's, or this one's as the fallback). `createHash` is passed in: importing
 * `node:crypto` here would load Node's compatibility layer wherever this module is loaded.
 */
export function hashFile(
  path: string,
  createHash: typeof import("node:crypto").createHash,
  hashedMiB?: Int32Array,
): { sha256: string; identity: string } {
  using file = Deno.openSync(path, { read: true });
  const identity = fileIdentity(file.statSync());
  const hash = createHash("sha256");
  const buf = new Uint8Array(READ);
  let bytes = 0;
  for (let n = file.readSync(buf); n; n = file.readSync(buf)) {
    hash.update(buf.subarray(0, n));
    bytes += n;
    if (hashedMiB) Atomics.store(hashedMiB, 0, bytes / (1 << 20));
  }
  return { sha256: hash.digest("hex"), identity };
}
