/**
 * Thin devices and snapshots in one pool, crash-safe: every `create_thin`, `create_snap` and
 * `delete` is preceded by a write-ahead intent in SQLite and followed by its outcome, so a
 * state machine may re-run any method after a crash and {@linkcode ThinPool.reconcile} can
 * finish or roll back whatever a killed process left half done.
 *
 * Every method is idempotent: asking again for what already exists returns it.
 *
 * @example
 * ```ts
 * import { StateDir } from "../state_dir.ts";
 * import { openPool } from "./pool.ts";
 * import { ThinPool } from "./thin.ts";
 * const dir = new StateDir("/var/lib/thinimage");
 * const store = dir.openStore();
 * const pool = new ThinPool(store, await openPool(store, "thinimage-pool"), dir.deviceHost());
 * await pool.reconcile();
 * await pool.createThin("thinimage-base", 1 << 30);
 * await pool.createSnapshot("thinimage-layer-1", "thinimage-base");
 * const dev = await pool.activate("thinimage-layer-1"); // "/dev/mapper/thinimage-layer-1"
 * ```
 * @module
 */
import type { Store } from "../store/db.ts";
import { ConflictError, InvalidInputError, TemporaryError, ThinimageError } from "../errors.ts";
import {
  DmBusyError,
  DmExistsError,
  DmNoDataError,
  DmNoSuchDeviceError,
  Dmsetup,
} from "./dmsetup.ts";
import { mkfsExt4, syncFilesystem } from "./fs.ts";
import { join } from "../path.ts";
import { isThinTableOf, parseThinPoolTable, parseThinTable } from "./parse.ts";
import { listThinIds, type PoolInfo, poolStatus, type PoolStatusReport } from "./pool.ts";
import { DeviceRecords, type ThinDevice } from "./records.ts";
import { checkDeviceName, KERNEL_PREFIX } from "../names.ts";

export type { ThinDevice } from "./records.ts";

/** Who this process is, and whether another owner still runs (src/host/process.ts). */
export interface IntentOwners {
  /** This process's owner id, stamped on every intent it writes. */
  owner: string;
  liveness: { status(owner: string): "alive" | "dead" | "unknown" };
}

/** Options of {@linkcode ThinPool}. */
export interface ThinPoolOptions {
  /** This process and its peers: the owner stamped on intents (the engine's own owner id). */
  owners: IntentOwners;
  /** Where the per-pool lock files live (`STATE/locks`), created when first needed. */
  locksDir: string;
  /** Refuse new devices below this share of free data space, in percent (default 10). */
  minFreeDataPercent?: number;
  /** Refuse new devices below this share of free metadata space, in percent (default 10). */
  minFreeMetaPercent?: number;
  /**
   * Called at the crash points of each intent, for the crash tests (which SIGKILL the process
   * there). `afterIntent`: the intent is committed, the dm message not yet sent;
   * `afterMessage`: the message succeeded, its outcome not yet recorded.
   */
  crashPoints?: {
    afterIntent?: (op: DmOp, device: ThinDevice) => void | Promise<void>;
    afterMessage?: (op: DmOp, device: ThinDevice) => void | Promise<void>;
  };
}

/** The dm messages that change the pool, each guarded by an intent. */
export type DmOp = "create_thin" | "create_snap" | "delete";

/** One difference between SQLite and the kernel, and what reconcile does (or did) about it. */
export interface Finding {
  /** The device row concerned, if any. */
  device?: string;
  thinId?: number;
  /** What differs, in words. */
  problem: string;
  /** What reconcile does about it. */
  action:
    | "none"
    | "dropped-intent"
    | "rolled-back"
    | "finished-removal"
    | "reactivated"
    | "resumed"
    | "recorded-active"
    | "recorded-inactive"
    | "marked-faulty"
    | "reserved-id";
}

/** What {@linkcode ThinPool.reconcile} found and did. */
export interface ReconcileReport {
  pool: string;
  findings: Finding[];
}

/** What one inspection read of the kernel, and whether it repairs. */
interface KernelView {
  /** The thin ids in the pool. */
  inPool: Set<number>;
  /** Live tables of our devices (other than the pool), by name. */
  live: Map<string, string>;
  /** The pool's `MAJOR:MINOR`. */
  poolDev: string;
  apply: boolean;
}

const SECTOR = 512;
/** How long a pool status read after a sync stands in for a fresh one, in ms. */
const STATUS_REUSE_MS = 2000;

/** The thin devices of one pool. */
export class ThinPool {
  readonly records: DeviceRecords;
  readonly #pool: PoolInfo;
  readonly #dm: Dmsetup;
  readonly #opts: ThinPoolOptions;
  #poolDevCache?: Promise<string>;
  /** Devices this object made live and has not deactivated since: known to be ours. */
  readonly #madeLive = new Set<string>();
  /** The pool's status read right after a write was synced: serves the next guard. */
  #afterWrite?: { at: number; status: PoolStatusReport };

  constructor(
    store: Store,
    pool: PoolInfo,
    opts: ThinPoolOptions,
    dm: Dmsetup = new Dmsetup(),
  ) {
    this.#pool = pool;
    this.#dm = dm;
    this.#opts = opts;
    this.records = new DeviceRecords(store);
  }

  /** The pool these devices live in. */
  get pool(): PoolInfo {
    return this.#pool;
  }

  /** The device row named `name`. */
  get(name: string): ThinDevice | undefined {
    const d = this.records.device(name);
    return d && d.pool === this.#pool.name ? d : undefined;
  }

  /** Every device row of this pool, by thin id. */
  list(): ThinDevice[] {
    return this.records.devices(this.#pool.name);
  }

  /**
   * Create the empty thin device `name` of `sizeBytes` (a multiple of 512), inactive. Returns
   * the existing record when `name` was created before with the same size.
   */
  async createThin(name: string, sizeBytes: number): Promise<ThinDevice> {
    checkDeviceName(name);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR !== 0) {
      throw new InvalidInputError(
        `size of ${name} must be a positive multiple of 512, not ${sizeBytes}`,
      );
    }
    const existing = this.get(name) ?? this.#notElsewhere(name);
    if (existing) {
      if (existing.origin !== undefined || existing.sizeBytes !== sizeBytes) {
        throw new InvalidInputError(
          `device ${name} exists already as ${
            describe(existing)
          }, not an empty ${sizeBytes}-byte device`,
        );
      }
      if (!(await this.#resume(existing))) return existing;
    }
    let d = existing;
    if (!d) {
      await this.#beforeCreate();
      d = this.records.beginCreate(this.#pool.name, name, sizeBytes, undefined, await this.#me());
    }
    return await this.#create(d, "create_thin", (id) => this.#dm.createThin(this.#pool.name, id));
  }

  /**
   * Create `name` as a snapshot of `origin` (same size), inactive. An active origin is
   * suspended around the message, as the kernel's thin-provisioning document requires, and
   * resumed even when the message fails. Returns the existing record when `name` was made from `origin` before.
   */
  async createSnapshot(name: string, origin: string): Promise<ThinDevice> {
    checkDeviceName(name);
    const o = this.get(origin);
    if (!o || (o.state !== "created" && o.state !== "active")) {
      throw new InvalidInputError(
        `cannot snapshot ${origin}: ${
          o ? `it is ${o.state}` : `no device of that name in pool ${this.#pool.name}`
        }`,
      );
    }
    const existing = this.get(name) ?? this.#notElsewhere(name);
    if (existing) {
      if (existing.origin !== origin) {
        throw new InvalidInputError(
          `device ${name} exists already as ${describe(existing)}, not a snapshot of ${origin}`,
        );
      }
      if (!(await this.#resume(existing))) return existing;
    }
    let d = existing;
    if (!d) {
      await this.#beforeCreate();
      d = this.records.beginCreate(
        this.#pool.name,
        name,
        o.sizeBytes,
        origin,
        await this.#me(),
        o.formatted,
      );
    }
    return await this.#create(
      d,
      "create_snap",
      (id) => this.#dm.createSnap(this.#pool.name, id, o.thinId),
      origin,
    );
  }

  /** Activate `name` and return its node, `/dev/mapper/NAME`. Idempotent. */
  async activate(name: string): Promise<string> {
    const d = this.#require(name);
    if (d.state !== "created" && d.state !== "active") {
      throw new ThinimageError(
        `cannot activate ${name}: it is ${d.state}${d.lastError ? ` (${d.lastError})` : ""}`,
      );
    }
    const want = {
      sectors: d.sizeBytes / SECTOR,
      poolDev: await this.#poolDev(),
      thinId: d.thinId,
    };
    // Every dmsetup run is a process (a fork, an exec and a udev wait): a device recorded
    // inactive is created straight away, and its live table is read only if the name turns
    // out taken.
    if (d.state !== "active" || !(await this.#isLive(d))) {
      try {
        await this.#dm.createThinDevice(name, want);
      } catch (err) {
        if (!(err instanceof DmExistsError) || !(await this.#isLive(d))) {
          throw new ThinimageError(
            `cannot activate ${name} (thin id ${d.thinId}): ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
    }
    this.#madeLive.add(name);
    if (d.state !== "active") this.records.setState(name, "active");
    return d.path;
  }

  /** Deactivate `name`, retrying while it is busy; a device that is not live is success. */
  async deactivate(name: string): Promise<void> {
    const d = this.#require(name);
    await this.#deactivate(d);
    if (d.state === "active") this.records.setState(name, "created");
  }

  /**
   * Deactivate `name` and delete its thin id; "No data available" (already deleted) counts
   * as done. A device still held open is retried, then refused with a TemporaryError (75),
   * left as it was. Removing what is not there is success.
   */
  async remove(name: string): Promise<void> {
    const d = this.get(name);
    if (!d) return;
    await this.#assertNotInFlight(d);
    const before = d.state;
    try {
      await this.#deactivate(d);
    } catch (err) {
      if (err instanceof DmBusyError) {
        throw new TemporaryError(
          `cannot remove ${name}: it is still open (mounted or held by a process) after retries`,
          { cause: err, details: { device: name, thinId: d.thinId } },
        );
      }
      throw err;
    }
    if (before === "active") this.records.setState(name, "created");
    this.records.setState(name, "removing", { owner: await this.#me() });
    await this.#withIntent("delete", this.get(name)!, async (sent) => {
      await this.#deleteId(d);
      await sent();
    }, () => this.records.drop(name));
  }

  /** mkfs.ext4 on base device `name` unless it (or its origin chain) has a filesystem. */
  async formatOnce(name: string): Promise<void> {
    const d = this.#require(name);
    if (d.formatted) return;
    let zeroes = this.#pool.zeroesNewBlocks;
    if (zeroes === undefined) {
      const table = await this.#dm.table(this.#pool.name);
      zeroes = table !== undefined &&
        !parseThinPoolTable(table).features.includes("skip_block_zeroing");
    }
    await mkfsExt4(await this.activate(name), { prezeroed: zeroes });
    this.records.setFormatted(name);
  }

  /**
   * The pool's status, refused (ThinimageError, exit 1) when the pool is in trouble
   * (read-only, needs_check, failed): what a command checks before it reaches the network.
   * The reading serves the next {@linkcode ThinPool.guardFreeSpace} for a moment, as one taken
   * after a write does.
   */
  async health(): Promise<PoolStatusReport> {
    const st = await poolStatus(this.#pool.name, this.#dm, this.#pool.blockSectors);
    this.#afterWrite = { at: Date.now(), status: st };
    refuseUnusable(st);
    return st;
  }

  /**
   * Free data space in bytes, and the floor {@linkcode ThinPool.guardFreeSpace} keeps free:
   * what may still be written is `freeBytes - floorBytes`.
   */
  async room(): Promise<{ pool: string; freeBytes: number; floorBytes: number }> {
    const st = await poolStatus(this.#pool.name, this.#dm, this.#pool.blockSectors);
    refuseUnusable(st);
    const minData = this.#opts.minFreeDataPercent ?? 10;
    return {
      pool: st.name,
      freeBytes: st.dataTotalBytes - st.dataUsedBytes,
      floorBytes: Math.ceil(st.dataTotalBytes * minData / 100),
    };
  }

  /**
   * Refuse (TemporaryError, exit 75, with the figures) when free data or metadata space is
   * below the thresholds, or the pool is out of space; a pool in trouble (read-only,
   * needs_check, failed) is a plain ThinimageError. Resolves to the data bytes left above the
   * threshold: how much may be written before the pool needs looking at again.
   */
  async guardFreeSpace(): Promise<number> {
    // A reading taken just after a layer's writes were synced is as current as a new one
    // (another process may write right after either), and costs no dmsetup run.
    const recent = this.#afterWrite;
    this.#afterWrite = undefined;
    const st = recent && Date.now() - recent.at < STATUS_REUSE_MS
      ? recent.status
      : await poolStatus(this.#pool.name, this.#dm, this.#pool.blockSectors);
    refuseUnusable(st);
    const dataFree = pct(st.totalDataBlocks - st.usedDataBlocks, st.totalDataBlocks);
    const metaFree = pct(st.totalMetaBlocks - st.usedMetaBlocks, st.totalMetaBlocks);
    const minData = this.#opts.minFreeDataPercent ?? 10;
    const minMeta = this.#opts.minFreeMetaPercent ?? 10;
    if (st.outOfDataSpace || dataFree < minData || metaFree < minMeta) {
      throw new TemporaryError(
        `pool ${st.name} is low on space: data ${st.usedDataBlocks}/${st.totalDataBlocks} blocks used ` +
          `(${
            dataFree.toFixed(1)
          }% free, need ${minData}%), metadata ${st.usedMetaBlocks}/${st.totalMetaBlocks} ` +
          `(${metaFree.toFixed(1)}% free, need ${minMeta}%): free space with ` +
          "'thinimage rm IMAGE' and 'thinimage gc', then retry",
        {
          details: {
            pool: st.name,
            usedDataBlocks: st.usedDataBlocks,
            totalDataBlocks: st.totalDataBlocks,
            usedMetaBlocks: st.usedMetaBlocks,
            totalMetaBlocks: st.totalMetaBlocks,
            minFreeDataPercent: minData,
            minFreeMetaPercent: minMeta,
          },
        },
      );
    }
    const floorBlocks = Math.ceil(st.totalDataBlocks * minData / 100);
    const room = (st.totalDataBlocks - st.usedDataBlocks - floorBlocks) * this.#pool.blockSectors *
      512;
    this.lastHeadroom = room;
    return room;
  }

  /** The data bytes above the free-space threshold at the last {@linkcode guardFreeSpace}. */
  lastHeadroom?: number;

  /**
   * Flush the filesystem mounted on `dir` (one of this pool's devices) and check the pool, as
   * {@linkcode syncFilesystem} does; the pool's status read there serves the next
   * {@linkcode ThinPool.guardFreeSpace}.
   */
  async syncWrites(dir: string): Promise<void> {
    const status = await syncFilesystem(dir, this.#pool.name, this.#dm, this.#pool.blockSectors);
    this.#afterWrite = { at: Date.now(), status };
  }

  /** The differences between SQLite and the kernel, changing nothing (for `thinimage status`). */
  async survey(): Promise<Finding[]> {
    return await this.#inspect(false);
  }

  /**
   * Compare the device rows with the kernel and repair: intents left by dead processes are
   * rolled back (a created id is deleted) or finished (removals); devices recorded active but
   * not live are activated again; a recorded id missing from the pool makes its device
   * faulty; an unknown id in the pool is reserved so it is never handed out. Run at start.
   */
  async reconcile(): Promise<ReconcileReport> {
    return { pool: this.#pool.name, findings: await this.#inspect(true) };
  }

  async #inspect(apply: boolean): Promise<Finding[]> {
    const findings: Finding[] = [];
    const inPool = await this.#idsResumingLeftSuspended(apply, findings);
    const live = new Map<string, string>();
    for (const [name, table] of await this.#dm.tables()) {
      if (name.startsWith(KERNEL_PREFIX) && name !== this.#pool.name) live.set(name, table);
    }
    const poolDev = await this.#poolDev();
    const rows = this.list();
    for (const d of rows) {
      const f = await this.#inspectDevice(d, { inPool, live, poolDev, apply });
      if (f) findings.push(f);
    }
    findings.push(...this.#unrecordedIds(rows, inPool, apply));
    findings.push(...this.#unrecordedLive(rows, live, poolDev));
    return findings;
  }

  /**
   * The thin ids in the pool, read under the pool lock, where nobody is between suspend and
   * resume: a suspended device of ours was left so by a process that died there, and
   * everything on it hangs until it is resumed.
   */
  async #idsResumingLeftSuspended(apply: boolean, findings: Finding[]): Promise<Set<number>> {
    return await this.#withPoolLock(async () => {
      const ids = new Set(await listThinIds(this.#pool, this.#dm));
      for (const name of await this.#dm.suspendedNames()) {
        if (!name.startsWith(KERNEL_PREFIX) || name === this.#pool.name) continue;
        findings.push({
          device: name,
          problem: "left suspended by a process that died",
          action: "resumed",
        });
        if (apply) await this.#dm.resume(name);
      }
      return ids;
    });
  }

  /** One device row against the pool's ids and the kernel; repaired when `k.apply`. */
  async #inspectDevice(d: ThinDevice, k: KernelView): Promise<Finding | undefined> {
    const { inPool, apply } = k;
    const base = { device: d.name, thinId: d.thinId };
    if ((d.state === "creating" || d.state === "removing") && (await this.#inFlight(d))) {
      return { ...base, problem: `${d.state} now, by process ${d.intentOwner}`, action: "none" };
    }
    switch (d.state) {
      case "creating":
        if (!inPool.has(d.thinId)) {
          if (apply) this.records.drop(d.name);
          return {
            ...base,
            problem: "a create intent without an outcome; the message never reached the pool",
            action: "dropped-intent",
          };
        }
        if (apply) await this.#destroy(d);
        return {
          ...base,
          problem: "a create intent without an outcome; the id is in the pool",
          action: "rolled-back",
        };
      case "removing":
        if (apply) await this.#destroy(d);
        return {
          ...base,
          problem: "a removal intent without an outcome",
          action: "finished-removal",
        };
      case "created":
      case "active":
        return await this.#inspectRecorded(d, k);
      case "faulty":
        return { ...base, problem: `faulty: ${d.lastError ?? "unknown"}`, action: "none" };
    }
  }

  /** A device recorded as made (created or active) against the pool and the kernel. */
  async #inspectRecorded(d: ThinDevice, k: KernelView): Promise<Finding | undefined> {
    const { inPool, poolDev, apply } = k;
    const table = k.live.get(d.name);
    const base = { device: d.name, thinId: d.thinId };
    if (!inPool.has(d.thinId)) {
      if (apply) {
        this.records.setState(d.name, "faulty", {
          error: `thin id ${d.thinId} missing from pool ${this.#pool.name}`,
        });
      }
      return {
        ...base,
        problem: `thin id ${d.thinId} is missing from the pool`,
        action: "marked-faulty",
      };
    }
    const ours = { thinId: d.thinId, poolDev, sectors: d.sizeBytes / SECTOR };
    if (table !== undefined && !isThinTableOf(table, ours)) {
      if (apply) this.records.setState(d.name, "faulty", { error: `live table differs: ${table}` });
      return {
        ...base,
        problem: `live table '${table}' is not this device's`,
        action: "marked-faulty",
      };
    }
    if (d.state === "active" && table === undefined) {
      if (apply) await this.activate(d.name);
      return { ...base, problem: "recorded active but not live", action: "reactivated" };
    }
    if (d.state === "created" && table !== undefined) {
      if (apply) this.records.setState(d.name, "active");
      return { ...base, problem: "recorded inactive but live", action: "recorded-active" };
    }
    return undefined;
  }

  /** Ids in the pool that no row and no reservation knows: reserved, never handed out. */
  #unrecordedIds(rows: ThinDevice[], inPool: Set<number>, apply: boolean): Finding[] {
    const known = new Set(rows.map((d) => d.thinId));
    const reserved = new Set(this.records.faultyIds(this.#pool.name).map((f) => f.thinId));
    const findings: Finding[] = [];
    for (const id of inPool) {
      if (known.has(id) || reserved.has(id)) continue;
      findings.push({
        thinId: id,
        problem: `thin id ${id} is in the pool but in no record`,
        action: "reserved-id",
      });
      if (apply) this.records.reserveId(this.#pool.name, id, "found in the pool without a record");
    }
    return findings;
  }

  /** Live devices of this pool under our prefix that no row names (reported, left alone). */
  #unrecordedLive(rows: ThinDevice[], live: Map<string, string>, poolDev: string): Finding[] {
    const names = new Set(rows.map((d) => d.name));
    const findings: Finding[] = [];
    for (const [name, table] of live) {
      const t = parseThinTable(table);
      if (!names.has(name) && t?.poolDev === poolDev) {
        findings.push({
          device: name,
          thinId: t.thinId,
          problem: `live device ${name} on this pool has no record`,
          action: "none",
        });
      }
    }
    return findings;
  }

  /** Deactivate `d`, delete its thin id and drop its row: what an unfinished intent comes to. */
  async #destroy(d: ThinDevice): Promise<void> {
    await this.#deactivate(d);
    await this.#deleteId(d);
    this.records.drop(d.name);
  }

  /**
   * One pool-changing message under its write-ahead intent, as containerd's `transition`:
   * `d`'s intent row is already committed (state `creating` or `removing`, owned by this
   * process); `send` sends the message, inside whatever it must hold (the pool lock, an
   * origin's suspension), and calls `sent()` as soon as the message succeeded; `done` then
   * records the outcome. The crash points sit on either side of the message. When `send`
   * throws, the intent stays for a rerun or for reconcile to finish or roll back.
   */
  async #withIntent<T>(
    op: DmOp,
    d: ThinDevice,
    send: (sent: () => Promise<void>) => Promise<T>,
    done: (result: T) => void,
  ): Promise<T> {
    const points = this.#opts.crashPoints;
    await points?.afterIntent?.(op, d);
    const result = await send(async () => {
      await points?.afterMessage?.(op, d);
    });
    done(result);
    return result;
  }

  /** Send the create message for `d` (in state 'creating'), moving on from ids already taken. */
  async #create(
    d: ThinDevice,
    op: DmOp,
    message: (thinId: number) => Promise<void>,
    origin?: string,
  ): Promise<ThinDevice> {
    for (let attempt = 0;; attempt++) {
      const dev = d;
      // The pool lock keeps a second process from resuming the origin while this one still
      // needs it suspended, and lets reconcile tell a suspension left by a dead process.
      const taken = await this.#withIntent(
        op,
        dev,
        (sent) =>
          this.#withPoolLock(() =>
            this.#withOriginSuspended(origin, async () => {
              try {
                await message(dev.thinId);
              } catch (err) {
                if (err instanceof DmExistsError && attempt < 64) return true;
                this.records.setState(dev.name, "creating", { error: (err as Error).message });
                throw new ThinimageError(
                  `cannot create ${dev.name} (thin id ${dev.thinId})${
                    origin ? ` from ${origin}` : ""
                  }: ${(err as Error).message}`,
                  { cause: err },
                );
              }
              await sent();
              return false;
            })
          ),
        (taken) => {
          if (!taken) this.records.setState(dev.name, "created");
        },
      );
      if (!taken) return this.get(d.name)!;
      d = this.records.moveToNextId(
        d.name,
        `taken in the pool by an unknown owner (seen creating ${d.name})`,
      );
    }
  }

  /**
   * Run `fn` with `origin` suspended when it is live, resuming it even when `fn` fails: the
   * kernel's thin-provisioning document requires an active origin to be suspended while it is
   * snapshotted (https://docs.kernel.org/admin-guide/device-mapper/thin-provisioning.html).
   */
  async #withOriginSuspended<T>(origin: string | undefined, fn: () => Promise<T>): Promise<T> {
    // Only a live origin needs suspending, and only one recorded active can be live: a
    // device goes live only through activate(), which records it, and one left live behind
    // its record (a crash between the two) is never a snapshot origin, since chains are
    // snapshotted only once sealed and sealed only after their device is deactivated.
    const suspend = origin !== undefined && this.get(origin)?.state === "active" &&
      (await this.#dm.table(origin)) !== undefined;
    if (suspend) await this.#dm.suspend(origin);
    try {
      return await fn();
    } finally {
      if (suspend) await this.#dm.resume(origin);
    }
  }

  /**
   * An existing row of `name`: decide whether its creation must be (re)done. A 'creating' row
   * left by a dead process is rolled back first (its id deleted, whether or not the message
   * reached the pool), then re-created under a fresh intent.
   */
  async #resume(d: ThinDevice): Promise<boolean> {
    switch (d.state) {
      case "created":
      case "active":
        return false;
      case "creating":
        await this.#assertNotInFlight(d);
        await this.#deleteId(d);
        this.records.setState(d.name, "creating", { owner: await this.#me() });
        return true;
      case "removing":
        throw new TemporaryError(`device ${d.name} is being removed; retry after the removal`);
      case "faulty":
        throw new ThinimageError(
          `device ${d.name} is faulty (${d.lastError ?? "unknown"}); remove it first`,
        );
    }
  }

  async #deleteId(d: ThinDevice): Promise<void> {
    try {
      await this.#dm.deleteThin(this.#pool.name, d.thinId);
    } catch (err) {
      if (err instanceof DmNoDataError) return; // already deleted
      throw new ThinimageError(
        `cannot delete thin id ${d.thinId} of ${d.name}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async #deactivate(d: ThinDevice): Promise<void> {
    // A device this object made live is known to be ours: no need to read its table first.
    if (!this.#madeLive.has(d.name) && !(await this.#isLive(d))) return;
    try {
      await this.#dm.remove(d.name);
    } catch (err) {
      if (!(err instanceof DmNoSuchDeviceError)) throw err;
    }
    this.#madeLive.delete(d.name);
  }

  /** Live under `d`'s name with `d`'s thin id in this pool (anything else is not ours). */
  async #isLive(d: ThinDevice): Promise<boolean> {
    const table = await this.#dm.table(d.name);
    if (table === undefined) return false;
    if (!isThinTableOf(table, { thinId: d.thinId, poolDev: await this.#poolDev() })) {
      throw new ConflictError(
        `a device named ${d.name} is live with table '${table}', which is not thin id ${d.thinId} of ${this.#pool.name}: another pool's or not this project's; remove it, or use another name`,
        { details: { device: d.name, table, thinId: d.thinId, pool: this.#pool.name } },
      );
    }
    return true;
  }

  #require(name: string): ThinDevice {
    const d = this.get(name);
    if (!d) throw new InvalidInputError(`no device named ${name} in pool ${this.#pool.name}`);
    return d;
  }

  #notElsewhere(name: string): undefined {
    const d = this.records.device(name);
    if (d) {
      throw new InvalidInputError(
        `device ${name} belongs to pool ${d.pool}, not ${this.#pool.name}`,
      );
    }
    return undefined;
  }

  async #assertNotInFlight(d: ThinDevice): Promise<void> {
    if (await this.#inFlight(d)) {
      throw new TemporaryError(
        `device ${d.name} is being ${
          d.state === "removing" ? "removed" : "created"
        } by process ${d.intentOwner}; retry later`,
      );
    }
  }

  /** True when `d`'s intent belongs to another process that is still running. */
  async #inFlight(d: ThinDevice): Promise<boolean> {
    if (!d.intentOwner || d.intentOwner === (await this.#me())) return false;
    // "unknown" (another host's id) is not in flight: only this host's processes can be
    // touching this kernel's devices.
    return this.#opts.owners.liveness.status(d.intentOwner) === "alive";
  }

  async #me(): Promise<string> {
    return await Promise.resolve(this.#opts.owners.owner);
  }

  /** Run `fn` holding this pool's lock file (`LOCKS/POOL.lock`, an flock). */
  async #withPoolLock<T>(fn: () => Promise<T>): Promise<T> {
    const dir = this.#opts.locksDir;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = await Deno.open(join(dir, `${this.#pool.name}.lock`), {
      read: true,
      write: true,
      create: true,
    });
    try {
      await file.lock(true);
      return await fn();
    } finally {
      file.close(); // drops the lock
    }
  }

  /** The free-space guard, with the pool's device number (needed to activate what is made) read meanwhile. */
  async #beforeCreate(): Promise<void> {
    await Promise.all([this.guardFreeSpace(), this.#poolDev()]);
  }

  #poolDev(): Promise<string> {
    return this.#poolDevCache ??= this.#dm.deviceNumber(this.#pool.name);
  }
}

function refuseUnusable(st: PoolStatusReport): void {
  if (st.failed || st.readOnly || st.needsCheck) {
    throw new ThinimageError(
      `pool ${st.name} is unusable (${st.problems.join(", ")}): see 'thinimage pool status'`,
      { details: { ...st } },
    );
  }
}

function pct(part: number, whole: number): number {
  return whole === 0 ? 0 : (part / whole) * 100;
}

function describe(d: ThinDevice): string {
  return d.origin
    ? `a snapshot of ${d.origin} (${d.state})`
    : `an empty ${d.sizeBytes}-byte device (${d.state})`;
}
