/**
 * The device-mapper ioctl ABI (version 4, linux/dm-ioctl.h) as bytes: requests packed and
 * replies read, with no I/O here, so every layout and bound is pinned by host tests
 * (tests/devmapper/dm_ioctl_test.ts). src/devmapper/dm_control.ts sends them.
 *
 * Every request is one `struct dm_ioctl` (312 bytes) followed by its data: for a table load,
 * `dm_target_spec`s (40 bytes) each followed by its parameter string; for a message, a sector
 * and the message string. The kernel answers in the same buffer; a reply that did not fit sets
 * {@linkcode DM_FLAG.BUFFER_FULL}, and the caller asks again with a bigger buffer.
 *
 * @example
 * ```ts
 * import { DM_CMD, packMessage, requestCode } from "./dm_ioctl.ts";
 * const buf = packMessage("thinimage-pool", "create_thin 7");
 * requestCode(DM_CMD.TARGET_MSG); // 0xc138fd0en
 * ```
 * @module
 */

/** `sizeof(struct dm_ioctl)`, where a request's data starts (a multiple of 8). */
export const DM_HEADER_SIZE = 312;
/** `sizeof(struct dm_target_spec)`. */
export const DM_SPEC_SIZE = 40;
/** Bytes of `name`, `uuid` and `target_type`, each with its NUL. */
export const DM_NAME_LEN = 128;
export const DM_UUID_LEN = 129;
export const DM_MAX_TYPE_NAME = 16;

/** Field offsets in `struct dm_ioctl`. */
const OFF = {
  version: 0,
  dataSize: 12,
  dataStart: 16,
  targetCount: 20,
  openCount: 24,
  flags: 28,
  eventNr: 32,
  dev: 40,
  name: 48,
  uuid: 176,
} as const;

/** The commands (`DM_*_CMD`) this project sends. */
export const DM_CMD = {
  VERSION: 0,
  DEV_CREATE: 3,
  DEV_REMOVE: 4,
  DEV_SUSPEND: 6,
  DEV_STATUS: 7,
  TABLE_LOAD: 9,
  TABLE_STATUS: 12,
  TARGET_MSG: 14,
} as const;

/** Their names, as libdevmapper's messages call them. */
export const DM_CMD_NAME: Record<number, string> = {
  0: "version",
  3: "create",
  4: "remove",
  6: "resume",
  7: "info",
  9: "reload",
  12: "status",
  14: "message",
};

/** `dm_ioctl.flags`. */
export const DM_FLAG = {
  READONLY: 1 << 0,
  SUSPEND: 1 << 1,
  /** A status request asks for the table instead (`dmsetup table`). */
  STATUS_TABLE: 1 << 4,
  ACTIVE_PRESENT: 1 << 5,
  INACTIVE_PRESENT: 1 << 6,
  /** The reply did not fit: ask again with a bigger buffer. */
  BUFFER_FULL: 1 << 8,
  /** A message's reply carries output. */
  DATA_OUT: 1 << 16,
} as const;

/** The ABI this code speaks: the kernel accepts any request of major 4 and minor up to its own. */
const VERSION = [4, 0, 0] as const;

/**
 * The ioctl request number of `cmd`: `_IOWR(0xfd, cmd, struct dm_ioctl)`, the same on x86-64
 * and arm64 (the generic ioctl encoding).
 */
export function requestCode(cmd: number): bigint {
  return (3n << 30n) | (BigInt(DM_HEADER_SIZE) << 16n) | (0xfdn << 8n) | BigInt(cmd);
}

/** One target line of a table: `START LENGTH TYPE PARAMS`. */
export interface DmTarget {
  start: number;
  length: number;
  type: string;
  params: string;
}

/** What the kernel says about a device in every reply's header. */
export interface DmReply {
  flags: number;
  targetCount: number;
  openCount: number;
  eventNr: number;
  /** `MAJOR:MINOR`. */
  dev: string;
  major: number;
  minor: number;
  dataSize: number;
  dataStart: number;
  /** The kernel's ABI version, `[major, minor, patch]`. */
  version: [number, number, number];
}

/** A request that cannot be encoded (a name too long, a table line unreadable). */
export class DmEncodeError extends Error {
  override name = "DmEncodeError";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** `name` as at most `size - 1` bytes (the kernel wants its NUL). */
function fixed(s: string, size: number, what: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length >= size) {
    throw new DmEncodeError(`${what} '${s}' is ${b.length} bytes; device-mapper takes ${size - 1}`);
  }
  if (b.includes(0)) throw new DmEncodeError(`${what} '${s}' holds a NUL byte`);
  return b;
}

/** What a request names and sets in its header. */
export interface DmHeader {
  /** The device's name ("" for commands about no device, such as version). */
  name: string;
  uuid?: string;
  flags?: number;
  targetCount?: number;
}

/**
 * A request buffer of `size` bytes (at least the header): the header written, data left zero,
 * `data_size` the whole buffer (the room for the reply) and `data_start` right after the header.
 */
export function packHeader(h: DmHeader, size = DM_HEADER_SIZE): Uint8Array {
  if (size < DM_HEADER_SIZE) throw new DmEncodeError(`a request needs ${DM_HEADER_SIZE} bytes`);
  const name = fixed(h.name, DM_NAME_LEN, "device name");
  const uuid = fixed(h.uuid ?? "", DM_UUID_LEN, "device uuid");
  const buf = new Uint8Array(size);
  const v = new DataView(buf.buffer);
  VERSION.forEach((n, i) => v.setUint32(OFF.version + 4 * i, n, true));
  v.setUint32(OFF.dataSize, size, true);
  v.setUint32(OFF.dataStart, DM_HEADER_SIZE, true);
  v.setUint32(OFF.targetCount, h.targetCount ?? 0, true);
  v.setUint32(OFF.flags, h.flags ?? 0, true);
  buf.set(name, OFF.name);
  buf.set(uuid, OFF.uuid);
  return buf;
}

/** Round up to the 8-byte alignment of `struct dm_target_spec`. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/**
 * Parse a table as `dmsetup create --table` takes it: one `START LENGTH TYPE PARAMS...` a line
 * (blank lines skipped).
 */
export function parseTableText(table: string): DmTarget[] {
  const targets: DmTarget[] = [];
  for (const raw of table.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    const m = /^(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) throw new DmEncodeError(`not a table line (START LENGTH TYPE PARAMS): '${line}'`);
    const start = Number(m[1]), length = Number(m[2]);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length)) {
      throw new DmEncodeError(`table line out of range: '${line}'`);
    }
    targets.push({ start, length, type: m[3], params: m[4].replace(/\s+/g, " ") });
  }
  if (targets.length === 0) throw new DmEncodeError("an empty table");
  return targets;
}

/** Render targets one a line, as `dmsetup table` and `dmsetup status` print them. */
export function formatTargets(targets: DmTarget[]): string {
  return targets.map((t) => `${t.start} ${t.length} ${t.type} ${t.params}`.trimEnd()).join("\n");
}

/**
 * A `TABLE_LOAD` request: the header, then each target's spec and NUL-terminated parameters,
 * padded to 8 bytes; each spec's `next` is the distance from that spec to the next one (on the
 * way in; replies count from the start of the data instead).
 */
export function packTableLoad(name: string, targets: DmTarget[], flags = 0): Uint8Array {
  const specs = targets.map((t) => {
    const type = fixed(t.type, DM_MAX_TYPE_NAME, "target type");
    const params = enc.encode(t.params);
    if (params.includes(0)) throw new DmEncodeError(`target parameters hold a NUL byte`);
    return { t, type, params, size: align8(DM_SPEC_SIZE + params.length + 1) };
  });
  const size = DM_HEADER_SIZE + specs.reduce((n, s) => n + s.size, 0);
  const buf = packHeader({ name, flags, targetCount: targets.length }, size);
  const v = new DataView(buf.buffer);
  let off = DM_HEADER_SIZE;
  for (const s of specs) {
    v.setBigUint64(off, BigInt(s.t.start), true);
    v.setBigUint64(off + 8, BigInt(s.t.length), true);
    v.setInt32(off + 16, 0, true);
    v.setUint32(off + 20, s.size, true);
    buf.set(s.type, off + 24);
    buf.set(s.params, off + DM_SPEC_SIZE);
    off += s.size;
  }
  return buf;
}

/** A `TARGET_MSG` request: `struct dm_target_msg` (sector u64, message) after the header. */
export function packMessage(name: string, message: string, sector = 0, room = 0): Uint8Array {
  const msg = enc.encode(message);
  if (msg.includes(0)) throw new DmEncodeError(`a message holds a NUL byte`);
  const size = Math.max(align8(DM_HEADER_SIZE + 8 + msg.length + 1), room);
  const buf = packHeader({ name }, size);
  new DataView(buf.buffer).setBigUint64(DM_HEADER_SIZE, BigInt(sector), true);
  buf.set(msg, DM_HEADER_SIZE + 8);
  return buf;
}

/** A reply that breaks the ABI's rules: reported, never trusted. */
export class DmReplyError extends Error {
  override name = "DmReplyError";
}

/** Decode the kernel's `dev` (`huge_encode_dev`: minor's low byte, major, minor's high bits). */
export function decodeDev(dev: bigint): { major: number; minor: number } {
  const d = Number(dev & 0xffffffffn);
  return { major: (d >>> 8) & 0xfff, minor: (d & 0xff) | ((d >>> 12) & 0xfff00) };
}

/** glibc's `makedev(major, minor)`, the `dev_t` that `mknod` takes. */
export function makedev(major: number, minor: number): bigint {
  const M = BigInt(major), m = BigInt(minor);
  return (m & 0xffn) | ((M & 0xfffn) << 8n) | ((m & ~0xffn) << 12n) | ((M & ~0xfffn) << 32n);
}

/** Read the header of a reply in `buf`. */
export function parseReply(buf: Uint8Array): DmReply {
  if (buf.length < DM_HEADER_SIZE) {
    throw new DmReplyError(`a reply of ${buf.length} bytes, shorter than its header`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const { major, minor } = decodeDev(v.getBigUint64(OFF.dev, true));
  return {
    version: [v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true)],
    dataSize: v.getUint32(OFF.dataSize, true),
    dataStart: v.getUint32(OFF.dataStart, true),
    targetCount: v.getUint32(OFF.targetCount, true),
    openCount: v.getInt32(OFF.openCount, true),
    flags: v.getUint32(OFF.flags, true),
    eventNr: v.getUint32(OFF.eventNr, true),
    major,
    minor,
    dev: `${major}:${minor}`,
  };
}

/** The NUL-terminated string at `off`, which must end before `end`. */
function cstring(buf: Uint8Array, off: number, end: number, what: string): string {
  const nul = buf.subarray(off, end).indexOf(0);
  if (nul < 0) throw new DmReplyError(`${what} runs past the reply's end`);
  return dec.decode(buf.subarray(off, off + nul));
}

/**
 * The targets of a `TABLE_STATUS` reply (each line's status, or its table with
 * {@linkcode DM_FLAG.STATUS_TABLE}): `target_count` specs from `data_start`, each `next`
 * counted from `data_start`, every offset checked against `data_size` and the buffer.
 */
export function parseTargets(buf: Uint8Array, reply = parseReply(buf)): DmTarget[] {
  if (reply.flags & DM_FLAG.BUFFER_FULL) {
    throw new DmReplyError("the reply was cut short (buffer full): ask with a bigger buffer");
  }
  const end = Math.min(reply.dataSize, buf.length);
  const base = reply.dataStart;
  if (base < DM_HEADER_SIZE || base > end) {
    throw new DmReplyError(`data_start ${base} outside the reply (${end} bytes)`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const targets: DmTarget[] = [];
  let off = base;
  for (let i = 0; i < reply.targetCount; i++) {
    if (off % 8 !== 0 || off + DM_SPEC_SIZE > end) {
      throw new DmReplyError(`target ${i} at ${off} outside the reply (${end} bytes)`);
    }
    const start = v.getBigUint64(off, true), length = v.getBigUint64(off + 8, true);
    const next = v.getUint32(off + 20, true);
    targets.push({
      start: Number(start),
      length: Number(length),
      type: cstring(buf, off + 24, off + DM_SPEC_SIZE, `target ${i}'s type`),
      params: cstring(buf, off + DM_SPEC_SIZE, end, `target ${i}'s parameters`),
    });
    if (i + 1 < reply.targetCount) {
      if (base + next <= off) throw new DmReplyError(`target ${i}'s next (${next}) goes back`);
      off = base + next;
    }
  }
  return targets;
}

/** A message's output (empty unless the kernel set {@linkcode DM_FLAG.DATA_OUT}). */
export function parseMessageOutput(buf: Uint8Array, reply = parseReply(buf)): string {
  if (!(reply.flags & DM_FLAG.DATA_OUT)) return "";
  const end = Math.min(reply.dataSize, buf.length);
  if (reply.dataStart < DM_HEADER_SIZE || reply.dataStart >= end) return "";
  return cstring(buf, reply.dataStart, end, "the message's output");
}

/** The reply buffer sizes tried in turn while the kernel reports a full buffer: 16 KiB to 1 MiB. */
export const REPLY_SIZES: readonly number[] = [16, 64, 256, 1024].map((k) => k * 1024);
