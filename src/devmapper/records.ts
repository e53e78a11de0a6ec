/**
 * The SQLite side of device-mapper: pool rows, device rows with their intents, thin id
 * allocation. Synchronous and free of dm calls, so allocation rules are tested on the host.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { DeviceRecords } from "./records.ts";
 * const records = new DeviceRecords(openStore(":memory:"));
 * records.device("thinimage-layer-1"); // undefined
 * ```
 * @module
 */
import type { Store } from "../store/db.ts";
import { ThinimageError } from "../errors.ts";
import { DEFAULT_POOL, mapperPath } from "../names.ts";
import type { Dmsetup } from "./dmsetup.ts";

/** Thin ids are 24-bit (the kernel's thin-provisioning document, linked from dmsetup.ts). */
export const MAX_THIN_ID = 0xffffff;

/** Where a device is in its life; 'creating' and 'removing' are write-ahead intents. */
export type DeviceState = "creating" | "created" | "active" | "removing" | "faulty";

/** A thin device as recorded. */
export interface ThinDevice {
  /** The dm name, `thinimage-...`; the device node is {@linkcode ThinDevice.path}. */
  name: string;
  pool: string;
  thinId: number;
  sizeBytes: number;
  /** The device this one is a snapshot of (as it was named at creation), if any. */
  origin?: string;
  state: DeviceState;
  /** mkfs.ext4 ran on it (or on its origin chain's base). */
  formatted: boolean;
  /** `/dev/mapper/NAME`. */
  path: string;
  /** The error that made it faulty, or the last failed operation. */
  lastError?: string;
  /** `PID@BOOT_ID` of the process whose intent is in flight. */
  intentOwner?: string;
}

/** A pool as recorded. */
export interface PoolRow {
  name: string;
  adopted: boolean;
  metaFile?: string;
  dataFile?: string;
  tableLine: string;
  blockSectors: number;
  dataSectors: number;
  nextThinId: number;
}

interface DeviceSqlRow {
  name: string;
  pool: string;
  thin_id: number;
  size_bytes: number;
  origin: string | null;
  state: DeviceState;
  intent_owner: string | null;
  formatted: number;
  last_error: string | null;
}

function toDevice(r: DeviceSqlRow): ThinDevice {
  return {
    name: r.name,
    pool: r.pool,
    thinId: r.thin_id,
    sizeBytes: r.size_bytes,
    origin: r.origin ?? undefined,
    state: r.state,
    formatted: r.formatted === 1,
    path: mapperPath(r.name),
    lastError: r.last_error ?? undefined,
    intentOwner: r.intent_owner ?? undefined,
  };
}

/** Pool and device rows of one store. */
export class DeviceRecords {
  constructor(readonly store: Store) {}

  /** The pool row named `name`. */
  pool(name: string): PoolRow | undefined {
    const r = this.store.db.prepare("SELECT * FROM dm_pools WHERE name = ?").get(name) as
      | Record<string, string | number | null>
      | undefined;
    if (!r) return undefined;
    return {
      name: r.name as string,
      adopted: r.adopted === 1,
      metaFile: (r.meta_file as string | null) ?? undefined,
      dataFile: (r.data_file as string | null) ?? undefined,
      tableLine: r.table_line as string,
      blockSectors: r.block_sectors as number,
      dataSectors: r.data_sectors as number,
      nextThinId: r.next_thin_id as number,
    };
  }

  /** Every pool row's name. */
  poolNames(): string[] {
    return (this.store.db.prepare("SELECT name FROM dm_pools ORDER BY name").all() as {
      name: string;
    }[]).map((r) => r.name);
  }

  /** Insert or refresh a pool row (the id counter is kept). */
  upsertPool(p: Omit<PoolRow, "nextThinId"> & { nextThinId?: number }): void {
    this.store.tx(() => {
      this.store.db.prepare(
        `INSERT INTO dm_pools (name, adopted, meta_file, data_file, table_line, block_sectors,
           data_sectors, next_thin_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET adopted = excluded.adopted, meta_file = excluded.meta_file,
           data_file = excluded.data_file, table_line = excluded.table_line,
           block_sectors = excluded.block_sectors, data_sectors = excluded.data_sectors,
           next_thin_id = MAX(next_thin_id, excluded.next_thin_id)`,
      ).run(
        p.name,
        p.adopted ? 1 : 0,
        p.metaFile ?? null,
        p.dataFile ?? null,
        p.tableLine,
        p.blockSectors,
        p.dataSectors,
        p.nextThinId ?? 1,
        Date.now(),
      );
    });
  }

  /** The device row named `name`. */
  device(name: string): ThinDevice | undefined {
    const r = this.store.db.prepare("SELECT * FROM thin_devices WHERE name = ?").get(name) as
      | DeviceSqlRow
      | undefined;
    return r ? toDevice(r) : undefined;
  }

  /** Every device row of `pool`, by thin id. */
  devices(pool: string): ThinDevice[] {
    return (this.store.db.prepare("SELECT * FROM thin_devices WHERE pool = ? ORDER BY thin_id")
      .all(pool) as unknown as DeviceSqlRow[]).map(toDevice);
  }

  /** Thin ids of `pool` that must never be handed out, with the reason. */
  faultyIds(pool: string): { thinId: number; reason: string }[] {
    return (this.store.db.prepare(
      "SELECT thin_id, reason FROM thin_faulty_ids WHERE pool = ? ORDER BY thin_id",
    ).all(pool) as { thin_id: number; reason: string }[]).map((r) => ({
      thinId: r.thin_id,
      reason: r.reason,
    }));
  }

  /**
   * Write the intent to create `name` with a freshly allocated thin id (one transaction), and
   * return the new row in state 'creating'. A snapshot inherits `formatted` from its origin
   * here, in the intent, so no crash can leave a filesystem's snapshot looking unformatted
   * (and mkfs'd over).
   */
  beginCreate(
    pool: string,
    name: string,
    sizeBytes: number,
    origin: string | undefined,
    owner: string,
    formatted = false,
  ): ThinDevice {
    return this.store.tx(() => {
      const id = this.#allocate(pool);
      const now = Date.now();
      this.store.db.prepare(
        `INSERT INTO thin_devices (name, pool, thin_id, size_bytes, origin, state, intent_owner,
           formatted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?)`,
      ).run(name, pool, id, sizeBytes, origin ?? null, owner, formatted ? 1 : 0, now, now);
      return this.device(name)!;
    });
  }

  /**
   * The pool already holds `name`'s thin id (someone else made it): reserve that id for good
   * and give `name` the next free one, in one transaction.
   */
  moveToNextId(name: string, reason: string): ThinDevice {
    return this.store.tx(() => {
      const d = this.device(name);
      if (!d) throw new ThinimageError(`no record of device ${name}`);
      this.reserveId(d.pool, d.thinId, reason);
      const id = this.#allocate(d.pool);
      this.store.db.prepare("UPDATE thin_devices SET thin_id = ?, updated_at = ? WHERE name = ?")
        .run(id, Date.now(), name);
      return this.device(name)!;
    });
  }

  /** Never hand out `thinId` of `pool` again. */
  reserveId(pool: string, thinId: number, reason: string): void {
    this.store.tx(() => {
      this.store.db.prepare(
        "INSERT OR IGNORE INTO thin_faulty_ids (pool, thin_id, reason, at) VALUES (?, ?, ?, ?)",
      ).run(pool, thinId, reason, Date.now());
    });
  }

  /** Move `name` to `state`, recording (or clearing) the intent's owner and the last error. */
  setState(
    name: string,
    state: DeviceState,
    opts: { owner?: string; error?: string } = {},
  ): void {
    this.store.tx(() => {
      this.store.db.prepare(
        `UPDATE thin_devices SET state = ?, intent_owner = ?, last_error = COALESCE(?, last_error),
           updated_at = ? WHERE name = ?`,
      ).run(state, opts.owner ?? null, opts.error ?? null, Date.now(), name);
    });
  }

  /** Record that `name` carries a filesystem. */
  setFormatted(name: string): void {
    this.store.tx(() => {
      this.store.db.prepare("UPDATE thin_devices SET formatted = 1, updated_at = ? WHERE name = ?")
        .run(Date.now(), name);
    });
  }

  /** Forget `name` (after its thin id is gone from the pool). */
  drop(name: string): void {
    this.store.tx(() => {
      this.store.db.prepare("DELETE FROM thin_devices WHERE name = ?").run(name);
    });
  }

  /** Next free id at or after the pool's counter, skipping used and faulty ids; wraps at 2^24. */
  #allocate(pool: string): number {
    const row = this.store.db.prepare("SELECT next_thin_id FROM dm_pools WHERE name = ?").get(
      pool,
    ) as { next_thin_id: number } | undefined;
    if (!row) throw new ThinimageError(`no record of pool ${pool}: run 'thinimage pool init'`);
    const taken = this.store.db.prepare(
      `SELECT 1 FROM thin_devices WHERE pool = ?1 AND thin_id = ?2
       UNION ALL SELECT 1 FROM thin_faulty_ids WHERE pool = ?1 AND thin_id = ?2`,
    );
    let id = row.next_thin_id;
    for (let n = 0; n <= MAX_THIN_ID; n++, id = id === MAX_THIN_ID ? 0 : id + 1) {
      if (taken.get(pool, id)) continue;
      this.store.db.prepare("UPDATE dm_pools SET next_thin_id = ? WHERE name = ?")
        .run(id === MAX_THIN_ID ? 0 : id + 1, pool);
      return id;
    }
    throw new ThinimageError(`pool ${pool} has no free thin id left`);
  }
}

/**
 * The pool to use: `asked`, else the only pool recorded in `store`, else
 * {@linkcode DEFAULT_POOL}.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { choosePool } from "./records.ts";
 * choosePool(openStore(":memory:")); // "thinimage-pool"
 * ```
 */
export function choosePool(store: Store, asked?: string): string {
  if (asked) return asked;
  const names = new DeviceRecords(store).poolNames();
  return names.length === 1 ? names[0] : DEFAULT_POOL;
}

/**
 * Start reading the pool `name` (table, status, device number: what opening it, its health
 * check and a new device's table need) in device-tool processes that run beside whatever comes
 * next. Only for a pool made here: adopting one runs `mknodes` first, which drops such reads.
 */
export function readPoolAhead(store: Store, name: string, dm: Dmsetup): void {
  const row = new DeviceRecords(store).pool(name);
  if (row && !row.adopted) dm.readAhead(name);
}
