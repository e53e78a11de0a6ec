/**
 * Pure parsers for what dmsetup, losetup and thin_ls print. No I/O here, so every format quirk
 * is pinned by a host test (tests/devmapper/parse_test.ts) with text captured from a real kernel.
 *
 * @example
 * ```ts
 * import { parsePoolStatus } from "./parse.ts";
 * const s = parsePoolStatus("0 131072 thin-pool 5 118/1024 1024/1024 - out_of_data_space discard_passdown error_if_no_space - 256");
 * s.outOfDataSpace; // true
 * ```
 * @module
 */
import { InvalidInputError } from "../errors.ts";

/** What a failed dmsetup call means, read from its stderr. */
export type DmErrorKind =
  | "no-driver"
  | "exists"
  | "no-such-device"
  | "busy"
  | "no-data"
  | "other";

/**
 * Classify dmsetup's stderr. The kernel answers `create` of a taken name with EBUSY, so a
 * busy `create ioctl` means "exists"; everywhere else EBUSY means the device is open.
 *
 * @example
 * ```ts
 * import { classifyDmStderr } from "./parse.ts";
 * classifyDmStderr("device-mapper: message ioctl on p  failed: File exists\nCommand failed.\n"); // "exists"
 * ```
 */
export function classifyDmStderr(stderr: string): DmErrorKind {
  if (
    /Failure to communicate with kernel device-mapper driver|\/dev\/mapper\/control: open failed/
      .test(stderr)
  ) {
    return "no-driver";
  }
  if (/create ioctl on .* failed: Device or resource busy/.test(stderr)) return "exists";
  if (/File exists/.test(stderr)) return "exists";
  if (/No data available/.test(stderr)) return "no-data";
  if (/Device or resource busy/.test(stderr)) return "busy";
  if (/No such device or address|Device does not exist|No such device\b|not found/.test(stderr)) {
    return "no-such-device";
  }
  return "other";
}

/** A thin pool's health and usage, from `dmsetup status POOL`. */
export interface PoolStatus {
  /** The caller-chosen 64-bit transaction id in the pool's metadata, in decimal (exact). */
  transactionId: string;
  usedMetaBlocks: number;
  totalMetaBlocks: number;
  usedDataBlocks: number;
  totalDataBlocks: number;
  /** The kernel switched the pool to read-only (metadata trouble). */
  readOnly: boolean;
  /** Data space ran out: writes to unprovisioned blocks fail (with error_if_no_space). */
  outOfDataSpace: boolean;
  /** The metadata must be repaired with thin_check before the pool is trusted again. */
  needsCheck: boolean;
  /** The pool target reported `Fail`: nothing else is known. */
  failed: boolean;
  /** A full pool fails I/O at once instead of queueing it. */
  errorIfNoSpace: boolean;
  /** A metadata snapshot is held (its root block), or undefined. */
  heldMetadataRoot?: number;
}

/** Metadata blocks are always 4 KiB (thin-provisioning.rst). */
export const META_BLOCK_BYTES = 4096;

/**
 * Parse `dmsetup status POOL`:
 * `0 LEN thin-pool TXID USED_META/TOTAL_META USED_DATA/TOTAL_DATA HELD_ROOT MODE ...`.
 *
 * @example
 * ```ts
 * import { parsePoolStatus } from "./parse.ts";
 * parsePoolStatus("0 131072 thin-pool 0 111/1024 0/1024 - rw discard_passdown error_if_no_space - 256").usedDataBlocks; // 0
 * ```
 */
export function parsePoolStatus(line: string): PoolStatus {
  const f = line.trim().split(/\s+/);
  if (f[2] !== "thin-pool") {
    throw new InvalidInputError(`not a thin-pool status line: '${line.trim()}'`);
  }
  const blank = {
    transactionId: "0",
    usedMetaBlocks: 0,
    totalMetaBlocks: 0,
    usedDataBlocks: 0,
    totalDataBlocks: 0,
    readOnly: false,
    outOfDataSpace: false,
    needsCheck: false,
    errorIfNoSpace: false,
  };
  if (f[3] === "Fail" || f[3] === "Error") return { ...blank, failed: true, readOnly: true };
  const meta = /^(\d+)\/(\d+)$/.exec(f[4] ?? "");
  const data = /^(\d+)\/(\d+)$/.exec(f[5] ?? "");
  if (!/^\d+$/.test(f[3] ?? "") || !meta || !data) {
    throw new InvalidInputError(`unreadable thin-pool status line: '${line.trim()}'`);
  }
  const flags = new Set(f.slice(7));
  return {
    transactionId: f[3],
    usedMetaBlocks: Number(meta[1]),
    totalMetaBlocks: Number(meta[2]),
    usedDataBlocks: Number(data[1]),
    totalDataBlocks: Number(data[2]),
    heldMetadataRoot: /^\d+$/.test(f[6] ?? "") ? Number(f[6]) : undefined,
    readOnly: f[7] === "ro",
    outOfDataSpace: f[7] === "out_of_data_space",
    needsCheck: flags.has("needs_check"),
    failed: false,
    errorIfNoSpace: flags.has("error_if_no_space"),
  };
}

/** A `thin-pool` table line, with devices as `MAJOR:MINOR` as the kernel prints them. */
export interface ThinPoolTable {
  sectors: number;
  metaDev: string;
  dataDev: string;
  blockSectors: number;
  lowWaterBlocks: number;
  features: string[];
}

/**
 * Parse `dmsetup table POOL` for a thin-pool target.
 *
 * @example
 * ```ts
 * import { parseThinPoolTable } from "./parse.ts";
 * parseThinPoolTable("0 131072 thin-pool 7:0 7:1 128 0 1 error_if_no_space").blockSectors; // 128
 * ```
 */
export function parseThinPoolTable(line: string): ThinPoolTable {
  const f = line.trim().split(/\s+/);
  if (f.length < 7 || f[0] !== "0" || f[2] !== "thin-pool" || line.trim().includes("\n")) {
    throw new InvalidInputError(`not a single-target thin-pool table: '${line.trim()}'`);
  }
  const n = Number(f[7] ?? 0);
  const features = f.slice(8, 8 + n);
  if (!Number.isInteger(n) || features.length !== n) {
    throw new InvalidInputError(`thin-pool table has a bad feature count: '${line.trim()}'`);
  }
  return {
    sectors: Number(f[1]),
    metaDev: f[3],
    dataDev: f[4],
    blockSectors: Number(f[5]),
    lowWaterBlocks: Number(f[6]),
    features,
  };
}

/** Render a thin-pool table the way the kernel prints it back (for comparison). */
export function formatThinPoolTable(t: ThinPoolTable): string {
  const feats = t.features.length ? ` ${t.features.length} ${t.features.join(" ")}` : " 0";
  return `0 ${t.sectors} thin-pool ${t.metaDev} ${t.dataDev} ${t.blockSectors} ${t.lowWaterBlocks}${feats}`;
}

/** A `thin` table line: which pool and thin id a device maps. */
export interface ThinTable {
  sectors: number;
  poolDev: string;
  thinId: number;
}

/**
 * Parse `dmsetup table NAME` for a thin target; undefined when it is some other target.
 *
 * @example
 * ```ts
 * import { parseThinTable } from "./parse.ts";
 * parseThinTable("0 8192 thin 253:0 1"); // { sectors: 8192, poolDev: "253:0", thinId: 1 }
 * ```
 */
export function parseThinTable(line: string): ThinTable | undefined {
  const f = line.trim().split(/\s+/);
  if (f.length < 5 || f[0] !== "0" || f[2] !== "thin") return undefined;
  return { sectors: Number(f[1]), poolDev: f[3], thinId: Number(f[4]) };
}

/**
 * Whether the live table `table` is thin device `want.thinId` (on the pool device
 * `want.poolDev` and of `want.sectors`, where given): the one test of "live as this device".
 * No table, or another target's, does not match.
 *
 * @example
 * ```ts
 * import { isThinTableOf } from "./parse.ts";
 * isThinTableOf("0 8192 thin 253:0 1", { thinId: 1, poolDev: "253:0" }); // true
 * isThinTableOf("0 8192 thin 253:4 1", { thinId: 1, poolDev: "253:0" }); // false
 * ```
 */
export function isThinTableOf(
  table: string | undefined,
  want: { thinId: number; poolDev?: string; sectors?: number },
): boolean {
  const t = table === undefined ? undefined : parseThinTable(table);
  return t !== undefined && t.thinId === want.thinId &&
    (want.poolDev === undefined || t.poolDev === want.poolDev) &&
    (want.sectors === undefined || t.sectors === want.sectors);
}

/**
 * The one-line table of a thin device, the inverse of {@linkcode parseThinTable}.
 *
 * @example
 * ```ts
 * import { formatThinTable } from "./parse.ts";
 * formatThinTable({ sectors: 8192, poolDev: "253:0", thinId: 1 }); // "0 8192 thin 253:0 1"
 * ```
 */
export function formatThinTable(t: ThinTable): string {
  return `0 ${t.sectors} thin ${t.poolDev} ${t.thinId}`;
}

/**
 * Parse `dmsetup ls`: one `NAME\t(MAJOR:MINOR)` a line, or "No devices found".
 *
 * @example
 * ```ts
 * import { parseDmsetupLs } from "./parse.ts";
 * parseDmsetupLs("p\t(253:0)\nt1\t(253:1)\n"); // [{ name: "p", dev: "253:0" }, { name: "t1", dev: "253:1" }]
 * ```
 */
export function parseDmsetupLs(out: string): { name: string; dev: string }[] {
  const rows: { name: string; dev: string }[] = [];
  for (const line of out.split("\n")) {
    const m = /^(\S+)\s+\((\d+)[:,]\s*(\d+)\)\s*$/.exec(line);
    if (m) rows.push({ name: m[1], dev: `${m[2]}:${m[3]}` });
  }
  return rows;
}

/**
 * Parse `dmsetup table` (all devices): `NAME: TABLE LINE`, one line per target.
 *
 * @example
 * ```ts
 * import { parseDmsetupTables } from "./parse.ts";
 * parseDmsetupTables("t1: 0 8192 thin 253:0 1\n").get("t1"); // "0 8192 thin 253:0 1"
 * ```
 */
export function parseDmsetupTables(out: string): Map<string, string> {
  const tables = new Map<string, string>();
  for (const line of out.split("\n")) {
    const i = line.indexOf(": ");
    if (i <= 0) continue; // "No devices found", blank lines
    const name = line.slice(0, i);
    const prev = tables.get(name);
    tables.set(
      name,
      prev === undefined ? line.slice(i + 2).trim() : `${prev}\n${line.slice(i + 2).trim()}`,
    );
  }
  return tables;
}

/**
 * Parse `dmsetup status -v NAME` (or `table -v`): the device's info block, whose
 * `Major, minor:` line gives its device number, then its target lines. `dev` is undefined when
 * no such line is found (the caller reads the number on its own then).
 *
 * @example
 * ```ts
 * import { parseVerboseDm } from "./parse.ts";
 * parseVerboseDm("Name:              p\nMajor, minor:      253, 0\n\n0 8192 linear 7:0 0\n");
 * // { lines: "0 8192 linear 7:0 0", dev: "253:0" }
 * ```
 */
export function parseVerboseDm(out: string): { lines: string; dev?: string } {
  const m = /^Major, minor:\s*(\d+),\s*(\d+)\s*$/m.exec(out);
  const lines = out.split("\n").map((l) => l.trim()).filter((l) => /^\d+ \d+ \S/.test(l));
  return { lines: lines.join("\n"), dev: m ? `${m[1]}:${m[2]}` : undefined };
}

/**
 * Parse `dmsetup info -c --noheadings --separator : -o name,suspended`: the suspended names.
 *
 * @example
 * ```ts
 * import { parseSuspendedNames } from "./parse.ts";
 * parseSuspendedNames("p:Active\nt1:Suspended\n"); // ["t1"]
 * ```
 */
export function parseSuspendedNames(out: string): string[] {
  return out.split("\n").map((l) => /^(.+):Suspended\s*$/.exec(l)?.[1]).filter((n): n is string =>
    n !== undefined
  );
}

/**
 * Parse `losetup -j FILE`: the loop devices backed by FILE.
 *
 * @example
 * ```ts
 * import { parseLosetupJ } from "./parse.ts";
 * parseLosetupJ("/dev/loop0: [0024]:524294 (/var/tmp/meta)\n"); // ["/dev/loop0"]
 * ```
 */
export function parseLosetupJ(out: string): string[] {
  return out.split("\n").map((l) => /^(\/dev\/loop\d+):/.exec(l)?.[1]).filter((d): d is string =>
    d !== undefined
  );
}

/**
 * Parse `thin_ls --no-headers -o DEV`: the thin ids present in the pool's metadata.
 *
 * @example
 * ```ts
 * import { parseThinLsIds } from "./parse.ts";
 * parseThinLsIds("1 \n  7\n"); // [1, 7]
 * ```
 */
export function parseThinLsIds(out: string): number[] {
  const ids: number[] = [];
  for (const line of out.split("\n")) {
    const t = line.trim();
    if (t === "") continue;
    if (!/^\d+$/.test(t)) throw new InvalidInputError(`unreadable thin_ls line: '${line}'`);
    ids.push(Number(t));
  }
  return ids;
}

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * Parse a size such as `2G`, `512M`, `64K` or `1048576` (powers of 1024; `iB`/`B` optional).
 *
 * @example
 * ```ts
 * import { parseSize } from "./parse.ts";
 * parseSize("2G"); // 2147483648
 * ```
 */
export function parseSize(text: string, what = "size"): number {
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new InvalidInputError(`${what} '${text}' is not a size like 2G, 512M or 65536`);
  const n = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidInputError(`${what} '${text}' is out of range`);
  }
  return n;
}
