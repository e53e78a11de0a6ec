/**
 * Who this process is, and whether another process still runs: the owner ids that the engine
 * stamps on the runs it drives, and the {@linkcode Liveness} check behind them.
 *
 * Each process that drives runs holds an exclusive `flock` on its own lock file
 * (`DIR/owner-PID-START.lock`) for as long as it lives. The kernel drops the lock when the
 * process dies, however it dies (SIGKILL included), so "can I take that lock?" answers "is
 * that owner dead?" exactly, with no pid-reuse window. (Reading `/proc/PID/stat` would need
 * `--allow-all` under Deno 2.9, which treats every `/proc` path as privileged.)
 *
 * An owner id is `HOST/PID/START`: the hostname, the pid and the process start time in ms since
 * the epoch (`performance.timeOrigin`), readable in `thinimage history`. Owners on another host
 * cannot be checked from here (`unknown`): the engine falls back on their lease.
 *
 * @example
 * ```ts
 * import { LockLiveness, OwnerLock } from "./process.ts";
 * const me = OwnerLock.acquire("/var/lib/thinimage/owners"); // held until exit
 * new LockLiveness("/var/lib/thinimage/owners").status(me.owner); // "alive"
 * ```
 * @module
 */
import type { Liveness } from "../engine/types.ts";

/** The parts of an owner id. */
export interface OwnerParts {
  host: string;
  pid: number;
  start: number;
}

/** Format an owner id. */
export function formatOwner(p: OwnerParts): string {
  return `${p.host}/${p.pid}/${p.start}`;
}

/** Parse an owner id; undefined when it is not one. */
export function parseOwner(owner: string): OwnerParts | undefined {
  const m = /^(.+)\/(\d+)\/(\d+)$/.exec(owner);
  if (!m) return undefined;
  return { host: m[1], pid: Number(m[2]), start: Number(m[3]) };
}

function lockPath(dir: string, p: OwnerParts): string {
  return `${dir}/owner-${p.pid}-${p.start}.lock`;
}

/** This process's owner lock: taken once, held until the process exits. */
export class OwnerLock {
  static #held = new Map<string, OwnerLock>();

  private constructor(
    /** This process's owner id. */
    readonly owner: string,
    readonly path: string,
    readonly file: Deno.FsFile,
  ) {}

  /**
   * Take this process's lock in `dir` (created if missing), or return the one already held.
   * Needs read/write on `dir` and `--allow-sys=hostname`.
   */
  static acquire(dir: string): OwnerLock {
    const known = OwnerLock.#held.get(dir);
    if (known) return known;
    const parts = {
      host: Deno.hostname(),
      pid: Deno.pid,
      start: Math.round(performance.timeOrigin),
    };
    Deno.mkdirSync(dir, { recursive: true });
    const path = lockPath(dir, parts);
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    if (!file.tryLockSync(true)) {
      file.close();
      throw new Error(`owner lock ${path} is held by another process`);
    }
    const lock = new OwnerLock(formatOwner(parts), path, file);
    OwnerLock.#held.set(dir, lock);
    return lock;
  }

  /** Let go (for tests and orderly shutdown); the run's owner then reads as dead. */
  release(): void {
    OwnerLock.#held.delete(this.path.slice(0, this.path.lastIndexOf("/")));
    try {
      Deno.removeSync(this.path);
    } catch { /* already gone */ }
    this.file.close();
  }
}

/** {@linkcode Liveness} from owner locks in `dir`: exact for owners on this host. */
export class LockLiveness implements Liveness {
  readonly #host: string;

  constructor(readonly dir: string, host: string = Deno.hostname()) {
    this.#host = host;
  }

  status(owner: string): "alive" | "dead" | "unknown" {
    const p = parseOwner(owner);
    if (!p || p.host !== this.#host) return "unknown";
    const path = lockPath(this.dir, p);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return "dead"; // cleaned up after its death
      throw err;
    }
    try {
      if (!file.tryLockSync(true)) return "alive";
      // We got the lock, so its owner is gone: remove the file while we hold it.
      try {
        Deno.removeSync(path);
      } catch { /* another prober removed it */ }
      return "dead";
    } finally {
      file.close();
    }
  }
}
