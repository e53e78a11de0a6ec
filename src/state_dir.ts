/**
 * The layout of a state directory (`--state-dir`, default `/var/lib/thinimage`), in one place:
 *
 * ```text
 * STATE/
 *   thinimage.db     the SQLite database: runs, catalogue, devices, blobs
 *   owners/          one lock file per live process: the owner id of its runs and intents
 *   locks/POOL.lock  held while a pool's origin is suspended for a snapshot
 *   mnt/DEVICE       where a chain device is mounted while a layer is applied
 *   pool/NAME.meta   the loop-backed pool's metadata and data files
 *   pool/NAME.data
 *   blobs/sha256/..  verified layer blobs
 * ```
 *
 * Nothing else builds these paths; modules that need one are handed it.
 *
 * @example
 * ```ts
 * import { StateDir } from "./state_dir.ts";
 * const dir = new StateDir("/var/lib/thinimage");
 * dir.database; // "/var/lib/thinimage/thinimage.db"
 * dir.mountPoint("thinimage-layer-1"); // "/var/lib/thinimage/mnt/thinimage-layer-1"
 * if (dir.hasDatabase()) dir.openStore().close();
 * ```
 * @module
 */
import { join } from "./path.ts";
import { type OpenOptions, openStore, type Store } from "./store/db.ts";
import { LockLiveness, OwnerLock } from "./host/process.ts";
import { socketPath } from "./daemon/protocol.ts";

/** Name of the database file inside the state directory. */
export const DB_FILE = "thinimage.db";

/** This process's owner id, and how to tell whether another owner still runs. */
export interface ProcessOwner {
  owner: string;
  liveness: LockLiveness;
}

/** One state directory's paths, and the store and owner lock kept there. */
export class StateDir {
  constructor(readonly root: string) {}

  /** The SQLite database file. */
  get database(): string {
    return join(this.root, DB_FILE);
  }
  /** Per-process owner locks (runs' and device intents' owners). */
  get owners(): string {
    return join(this.root, "owners");
  }
  /** Per-pool lock files. */
  get locks(): string {
    return join(this.root, "locks");
  }
  /** Mount points of devices being written. */
  get mnt(): string {
    return join(this.root, "mnt");
  }
  /** The loop-backed pools' files. */
  get pool(): string {
    return join(this.root, "pool");
  }
  /** The blob store. */
  get blobs(): string {
    return join(this.root, "blobs");
  }
  /** Where `thinimage daemon` listens (the client finds it by {@linkcode socketPath} alone). */
  get daemonSocket(): string {
    return socketPath(this.root);
  }
  /** Held by the one daemon serving this directory. */
  get daemonLock(): string {
    return join(this.root, "daemon.lock");
  }

  /** Where `device` is mounted while it is written. */
  mountPoint(device: string): string {
    return join(this.mnt, device);
  }

  /** Create the directory (mode 0700) if it is missing. */
  async ensure(): Promise<void> {
    await Deno.mkdir(this.root, { recursive: true, mode: 0o700 });
  }

  /** True when the database exists: something was ever recorded here. */
  hasDatabase(): boolean {
    try {
      Deno.statSync(this.database);
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /** Open (creating and migrating if needed) the database. The directory must exist. */
  openStore(options?: OpenOptions): Store {
    return openStore(this.database, options);
  }

  /**
   * Take this process's owner lock in `owners/` (once; later calls return the same owner):
   * the engine stamps runs with it and the device layer its intents, so they are one id.
   */
  processOwner(): ProcessOwner {
    return { owner: OwnerLock.acquire(this.owners).owner, liveness: new LockLiveness(this.owners) };
  }

  /** What the device layer (`ThinPool`) is handed: this process's owner and the lock folder. */
  deviceHost(): { owners: ProcessOwner; locksDir: string } {
    return { owners: this.processOwner(), locksDir: this.locks };
  }
}
