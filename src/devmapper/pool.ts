/**
 * The thin pool: a loop-backed pool made from files in the state directory, or an existing
 * pool adopted by name; and its status, read as figures and flags.
 *
 * A pool this module makes sets `error_if_no_space`: without it a full pool queues I/O and
 * hangs every writer; with it the writer gets an error at once, as the kernel's document says:
 * https://docs.kernel.org/admin-guide/device-mapper/thin-provisioning.html.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { initPool, poolStatus } from "./pool.ts";
 * const store = openStore("/var/lib/thinimage/thinimage.db");
 * const pool = await initPool("/var/lib/thinimage/pool", store, { dataSize: 2 * 2 ** 30 });
 * const st = await poolStatus(pool.name); // st.usedDataBlocks, st.healthy, ...
 * ```
 * @module
 */
import { join } from "../path.ts";
import type { Store } from "../store/db.ts";
import { InvalidInputError, ThinimageError, UsageError } from "../errors.ts";
import { DmBusyError, DmExistsError, Dmsetup } from "./dmsetup.ts";
import {
  attachLoop,
  detachLoop,
  deviceNumber,
  devicePath,
  devicePaths,
  findLoops,
} from "./loop.ts";
import {
  formatThinPoolTable,
  META_BLOCK_BYTES,
  parsePoolStatus,
  parseThinLsIds,
  parseThinPoolTable,
  type PoolStatus,
  type ThinPoolTable,
} from "./parse.ts";
import { DeviceRecords, type PoolRow } from "./records.ts";
import { checkDeviceName, DEFAULT_POOL, mapperPath } from "../names.ts";
import { runTool, TOOLS } from "./tools.ts";

/** A pool ready for thin devices. */
export interface PoolInfo {
  /** The dm name of the pool. */
  name: string;
  /** `/dev/mapper/NAME`. */
  path: string;
  /**
   * The metadata device (`/dev/loopN` for a pool made here), or its `MAJOR:MINOR` when the
   * pool was opened by {@linkcode ensurePool}'s quick path (see {@linkcode devicePath}).
   */
  metaDev: string;
  /** The data device, likewise. */
  dataDev: string;
  /** The pool zeroes newly provisioned blocks (no `skip_block_zeroing`); unknown if absent. */
  zeroesNewBlocks?: boolean;
  /** Data block size in 512-byte sectors. */
  blockSectors: number;
  /** Length of the pool in sectors. */
  dataSectors: number;
  /** True when the pool was made by someone else and adopted. */
  adopted: boolean;
  /** The backing files of a pool made here. */
  metaFile?: string;
  dataFile?: string;
}

/** Options of {@linkcode initPool}; sizes in bytes. */
export interface InitPoolOptions {
  /** Pool name (default `thinimage-pool`); must start with `thinimage-`. */
  name?: string;
  /** Data size (default 2 GiB, or the existing file's size). */
  dataSize?: number;
  /** Metadata size (default 1/128 of the data, at least 16 MiB; or the existing file's). */
  metaSize?: number;
  /** Data block size (default 64 KiB): a multiple of 64 KiB, 64 KiB to 1 GiB. */
  blockSize?: number;
}

const SECTOR = 512;
const MIN_META = 2 * 2 ** 20;
const MAX_META = 16 * 2 ** 30; // the kernel uses at most ~16 GiB of metadata

/**
 * Make (or find again) the loop-backed pool `name` over `POOLDIR/NAME.{meta,data}` (the state
 * directory's `pool/`).
 * Idempotent: reuses the files and their loop devices and accepts a live pool whose table is
 * the one it would create; refuses (InvalidInputError, exit 65) a same-named device whose
 * table differs, or existing files of another size than asked for.
 */
export async function initPool(
  poolDir: string,
  store: Store,
  opts: InitPoolOptions = {},
  dm: Dmsetup = new Dmsetup(),
): Promise<PoolInfo> {
  const name = opts.name ?? DEFAULT_POOL;
  checkDeviceName(name);
  const blockSize = opts.blockSize ?? 64 * 1024;
  if (blockSize % (64 * 1024) !== 0 || blockSize < 64 * 1024 || blockSize > 2 ** 30) {
    throw new InvalidInputError(
      `block size ${blockSize} must be a multiple of 64 KiB between 64 KiB and 1 GiB`,
    );
  }
  await Deno.mkdir(poolDir, { recursive: true, mode: 0o700 });
  const dataFile = join(poolDir, `${name}.data`);
  const metaFile = join(poolDir, `${name}.meta`);
  const dataSize = await sizeFile(dataFile, opts.dataSize, 2 * 2 ** 30, "data");
  if (dataSize < blockSize) {
    throw new InvalidInputError(`data size ${dataSize} is smaller than one block (${blockSize})`);
  }
  const metaDefault = Math.max(16 * 2 ** 20, Math.ceil(dataSize / 128 / 4096) * 4096);
  const metaSize = await sizeFile(metaFile, opts.metaSize, metaDefault, "metadata");
  if (metaSize < MIN_META || metaSize > MAX_META) {
    throw new InvalidInputError(`metadata size ${metaSize} must be between 2 MiB and 16 GiB`);
  }
  const before = [...await findLoops(metaFile), ...await findLoops(dataFile)];
  const metaDev = await attachLoop(metaFile);
  const dataDev = await attachLoop(dataFile);
  // On refusal, detach what this call attached, so a refused init leaks no loop device.
  const undoLoops = async () => {
    for (const dev of [metaDev, dataDev]) if (!before.includes(dev)) await detachLoop(dev);
  };
  const blockSectors = blockSize / SECTOR;
  const blocks = Math.floor(dataSize / blockSize);
  const poolTable: ThinPoolTable = {
    sectors: blocks * blockSectors,
    metaDev: await deviceNumber(metaDev),
    dataDev: await deviceNumber(dataDev),
    blockSectors,
    lowWaterBlocks: Math.min(32768, Math.floor(blocks / 10)),
    features: ["error_if_no_space"],
  };
  const table = formatThinPoolTable(poolTable);
  let live = await dm.table(name);
  if (live === undefined) {
    try {
      await dm.createPool(name, poolTable);
    } catch (err) {
      if (!(err instanceof DmExistsError)) throw err;
      live = await dm.table(name); // made meanwhile by a concurrent init
    }
  }
  if (live !== undefined && normalize(live) !== normalize(table)) {
    await undoLoops();
    throw new InvalidInputError(
      `a device named ${name} exists with table '${live.trim()}', not the pool this state ` +
        `directory makes ('${table}'); pick another --name or adopt it with --pool ${name}`,
      { details: { live: live.trim(), expected: table } },
    );
  }
  if (live !== undefined) await dm.ensureNode(name); // made by an earlier run, maybe nodeless
  new DeviceRecords(store).upsertPool({
    name,
    adopted: false,
    metaFile,
    dataFile,
    tableLine: table,
    blockSectors,
    dataSectors: blocks * blockSectors,
  });
  return {
    name,
    path: mapperPath(name),
    metaDev,
    dataDev,
    blockSectors,
    dataSectors: blocks * blockSectors,
    zeroesNewBlocks: true,
    adopted: false,
    metaFile,
    dataFile,
  };
}

/**
 * Adopt the live thin pool `poolName` (made by someone else, any name). Thin ids already in it
 * are reserved for good, so this project never touches them. Idempotent.
 */
export async function adoptPool(
  store: Store,
  poolName: string,
  dm: Dmsetup = new Dmsetup(),
): Promise<PoolInfo> {
  const info = await livePool(poolName, dm, true);
  const records = new DeviceRecords(store);
  const ours = new Set(records.devices(poolName).map((d) => d.thinId));
  const ids = await listThinIds(info, dm);
  const prior = records.pool(poolName);
  records.upsertPool({
    name: poolName,
    adopted: prior?.adopted ?? true,
    metaFile: prior?.metaFile,
    dataFile: prior?.dataFile,
    tableLine: normalize((await dm.table(poolName)) ?? ""),
    blockSectors: info.blockSectors,
    dataSectors: info.dataSectors,
    nextThinId: Math.min(0xffffff, Math.max(0, ...ids) + 1),
  });
  store.tx(() => {
    for (const id of ids) {
      if (!ours.has(id)) records.reserveId(poolName, id, "present in the pool when adopted");
    }
  });
  return {
    ...info,
    adopted: records.pool(poolName)!.adopted,
    metaFile: prior?.metaFile,
    dataFile: prior?.dataFile,
  };
}

/**
 * The row of pool `name`, or a usage error (exit 2) saying how to make or adopt one. Reads
 * SQLite only: a command checks this before anything else, kernel or network.
 */
export function recordedPool(store: Store, name: string): PoolRow {
  const records = new DeviceRecords(store);
  const row = records.pool(name);
  if (row) return row;
  const names = records.poolNames();
  const details = { pool: name, recorded: names };
  if (names.length === 0 && name === DEFAULT_POOL) {
    throw new UsageError(
      "no thin pool is set up in this state directory: make one with 'thinimage pool init', " +
        "or adopt an existing one with 'thinimage pool init --pool NAME'",
      { details },
    );
  }
  if (names.length > 1 && name === DEFAULT_POOL) {
    throw new UsageError(
      `this state directory has several pools (${names.join(", ")}): choose one with --pool NAME`,
      { details },
    );
  }
  throw new UsageError(
    `no pool named '${name}' here: adopt it with 'thinimage pool init --pool ${name}'` +
      (names.length ? ` (this state directory has ${names.join(", ")})` : ""),
    { details },
  );
}

/**
 * The pool `name` as recorded in `store`, checked against the kernel: its live table must be
 * the recorded one (a pool made here whose loop devices went, after a reboot, is made again
 * with {@linkcode initPool}).
 */
export async function openPool(
  store: Store,
  name: string,
  dm: Dmsetup = new Dmsetup(),
): Promise<PoolInfo> {
  const row = recordedPool(store, name);
  const info = await livePool(name, dm, row.adopted, true);
  return { ...info, adopted: row.adopted, metaFile: row.metaFile, dataFile: row.dataFile };
}

/** A pool's status with its figures in bytes and a verdict. */
export interface PoolStatusReport extends PoolStatus {
  name: string;
  blockSectors: number;
  dataUsedBytes: number;
  dataTotalBytes: number;
  metaUsedBytes: number;
  metaTotalBytes: number;
  /** Nothing below is wrong: usable for new devices. */
  healthy: boolean;
  /** What is wrong, in words (empty when healthy). */
  problems: string[];
}

/**
 * Read `dmsetup status` of `poolName` (and its table for the block size, unless the caller
 * knows it: each dmsetup run costs a process).
 */
export async function poolStatus(
  poolName: string,
  dm: Dmsetup = new Dmsetup(),
  blockSectors?: number,
): Promise<PoolStatusReport> {
  const line = await dm.status(poolName);
  if (line === undefined) {
    throw new UsageError(
      `no device-mapper device named '${poolName}': see 'dmsetup ls --target thin-pool'`,
      { details: { pool: poolName } },
    );
  }
  const st = parsePoolStatus(line);
  if (blockSectors === undefined) {
    const table = await dm.table(poolName);
    if (table === undefined) {
      throw new UsageError(`no device-mapper device named '${poolName}'`, {
        details: { pool: poolName },
      });
    }
    blockSectors = parseThinPoolTable(table).blockSectors;
  }
  const problems: string[] = [];
  if (st.failed) problems.push("the pool target failed");
  if (st.needsCheck) problems.push("metadata needs thin_check");
  if (st.readOnly) problems.push("read-only");
  if (st.outOfDataSpace) problems.push("out of data space");
  return {
    ...st,
    name: poolName,
    blockSectors,
    dataUsedBytes: st.usedDataBlocks * blockSectors * SECTOR,
    dataTotalBytes: st.totalDataBlocks * blockSectors * SECTOR,
    metaUsedBytes: st.usedMetaBlocks * META_BLOCK_BYTES,
    metaTotalBytes: st.totalMetaBlocks * META_BLOCK_BYTES,
    healthy: problems.length === 0,
    problems,
  };
}

/**
 * The thin ids in the pool's metadata, read through a metadata snapshot (live metadata is
 * only consistent that way).
 */
export async function listThinIds(pool: PoolInfo, dm: Dmsetup = new Dmsetup()): Promise<number[]> {
  try {
    await dm.reserveMetadataSnap(pool.name);
  } catch (err) {
    // EBUSY: a snapshot is held already, left by a run killed before its release (ThinPool
    // reads ids under its pool lock, so not a live one): release it and take a fresh one.
    if (!(err instanceof DmBusyError)) throw err;
    await dm.releaseMetadataSnap(pool.name);
    await dm.reserveMetadataSnap(pool.name);
  }
  try {
    const out = await runTool(TOOLS.thinLs, [
      "--metadata-snap",
      "--no-headers",
      "-o",
      "DEV",
      await devicePath(pool.metaDev),
    ]);
    if (out.code !== 0) {
      throw new ThinimageError(
        `thin_ls on ${pool.metaDev} of pool ${pool.name}: ${out.stderr.trim()}`,
      );
    }
    return parseThinLsIds(out.stdout);
  } finally {
    await dm.releaseMetadataSnap(pool.name);
  }
}

/**
 * Remove a pool made by {@linkcode initPool}: deactivate it, detach its loop devices, and with
 * `deleteFiles` delete its files and records. Every thin device must be gone first.
 */
export async function removePool(
  store: Store,
  name: string,
  opts: { deleteFiles?: boolean } = {},
  dm: Dmsetup = new Dmsetup(),
): Promise<void> {
  const records = new DeviceRecords(store);
  const row = records.pool(name);
  if (!row || row.adopted) throw new InvalidInputError(`pool ${name} was not made here`);
  const left = records.devices(name);
  if (left.length > 0) {
    throw new InvalidInputError(
      `pool ${name} still has devices: ${left.map((d) => d.name).join(", ")}`,
    );
  }
  if ((await dm.table(name)) !== undefined) await dm.remove(name);
  for (const f of [row.metaFile, row.dataFile]) {
    if (!f) continue;
    for (const dev of await findLoops(f)) await detachLoop(dev);
    if (opts.deleteFiles) await Deno.remove(f).catch(() => {});
  }
  if (opts.deleteFiles) {
    store.tx(() => {
      store.db.prepare("DELETE FROM thin_faulty_ids WHERE pool = ?").run(name);
      store.db.prepare("DELETE FROM dm_pools WHERE name = ?").run(name);
    });
  }
}

async function livePool(
  name: string,
  dm: Dmsetup,
  adopted: boolean,
  recorded = false,
): Promise<PoolInfo> {
  const table = await dm.table(name);
  if (table === undefined) {
    // Named on the command line but absent: the command line is wrong. Recorded here but
    // gone (a reboot took a pool someone else made): the host must set it up again.
    throw recorded
      ? new ThinimageError(
        `pool '${name}' is recorded here but not live in the kernel: set it up again as it was ` +
          `made (e.g. 'dmsetup create ${name} ...'), then retry`,
        { details: { pool: name } },
      )
      : new UsageError(
        `no device-mapper device named '${name}': see 'dmsetup ls --target thin-pool'`,
        { details: { pool: name } },
      );
  }
  return await describeLive(name, table, dm, adopted);
}

/**
 * The pool `name` whose live table is `table`, its node made if it has none (`dmsetup mknodes`
 * always: Deno refuses to stat /dev without --allow-all). `quick`: neither
 * (a pool made here got its node from `dmsetup create --verifyudev`, and nothing this project
 * runs opens the pool's node; the loop devices are named only when a tool needs a path).
 */
async function describeLive(
  name: string,
  table: string,
  dm: Dmsetup,
  adopted: boolean,
  quick = false,
): Promise<PoolInfo> {
  const t = parseThinPoolTable(table);
  // Made without udev (or by someone else without --verifyudev), a device may have no node.
  if (!quick) await dm.ensureNode(name);
  const [metaDev, dataDev] = quick
    ? [t.metaDev, t.dataDev]
    : await devicePaths([t.metaDev, t.dataDev]);
  return {
    name,
    path: mapperPath(name),
    metaDev,
    dataDev,
    blockSectors: t.blockSectors,
    dataSectors: t.sectors,
    zeroesNewBlocks: !t.features.includes("skip_block_zeroing"),
    adopted,
  };
}

/** Create `file` (sparse) at `asked ?? fallback` bytes, or check an existing one's size. */
async function sizeFile(
  file: string,
  asked: number | undefined,
  fallback: number,
  what: string,
): Promise<number> {
  let size: number | undefined;
  try {
    size = (await Deno.stat(file)).size;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (size !== undefined) {
    if (asked !== undefined && asked !== size) {
      throw new InvalidInputError(
        `${what} file ${file} exists with ${size} bytes, not the ${asked} asked for`,
      );
    }
    return size;
  }
  const want = asked ?? fallback;
  if (want % 4096 !== 0) {
    throw new InvalidInputError(`${what} size ${want} is not a multiple of 4 KiB`);
  }
  // Sparse: the kernel zero-fills on read, and a zeroed metadata device is formatted afresh.
  const f = await Deno.open(file, { createNew: true, write: true, mode: 0o600 });
  try {
    await f.truncate(want);
  } finally {
    f.close();
  }
  return want;
}

function normalize(table: string): string {
  return table.trim().split(/\s+/).join(" ");
}

/**
 * The recorded pool `name`, ready for use: an adopted pool must be live; a pool made here is
 * set up again with {@linkcode initPool} (idempotent; after a reboot it re-attaches the loop
 * devices and re-creates the pool from its files, whose metadata kept every thin device).
 */
export async function ensurePool(
  poolDir: string,
  store: Store,
  name: string,
  dm: Dmsetup = new Dmsetup(),
): Promise<PoolInfo> {
  const row = recordedPool(store, name);
  if (row.adopted) return await openPool(store, name, dm);
  // Every command that touches a device comes here first: when the kernel already holds the
  // table recorded at init (same loop devices, same geometry), there is nothing to make, and
  // initPool's idempotent checks would cost six more processes (losetup, lsblk).
  const live = await dm.table(name);
  if (live !== undefined && normalize(live) === normalize(row.tableLine)) {
    const info = await describeLive(name, live, dm, false, true);
    return { ...info, metaFile: row.metaFile, dataFile: row.dataFile };
  }
  return await initPool(poolDir, store, { name }, dm);
}
