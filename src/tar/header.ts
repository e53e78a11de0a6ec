/**
 * The tar header block: where each field sits, and the few facts read straight from it (the
 * checksum, the format magic, numbers, NUL-terminated strings). The reader and the blob-format
 * sniffer (`image/format.ts`) both read headers through this module, so there is one place that
 * knows the layout.
 *
 * The layout is POSIX ustar's. GNU tar writes the same fields up to `gname`; after them it keeps
 * its own (access and change times, multi-volume offsets) where ustar has `prefix`, which is why
 * {@linkcode headerName} joins `prefix` only for ustar headers.
 *
 * @example
 * ```ts
 * import { BLOCK, checksumMatches, HEADER, numericField } from "./header.ts";
 * const block = new Uint8Array(BLOCK);
 * numericField(block, HEADER.size); // NaN: an empty field is not a number
 * checksumMatches(block); // false
 * ```
 * @module
 */

/** Size of a header block, and the unit every entry's data is padded to. */
export const BLOCK = 512;

/** Where a field starts in the header block, and how many bytes it has. */
export interface HeaderField {
  readonly offset: number;
  readonly length: number;
}

/** The fields of a header block, in the order they appear. */
export const HEADER = Object.freeze(
  {
    name: { offset: 0, length: 100 },
    mode: { offset: 100, length: 8 },
    uid: { offset: 108, length: 8 },
    gid: { offset: 116, length: 8 },
    size: { offset: 124, length: 12 },
    mtime: { offset: 136, length: 12 },
    /** Octal sum of the block's bytes, counting this field as eight spaces. */
    checksum: { offset: 148, length: 8 },
    typeflag: { offset: 156, length: 1 },
    linkname: { offset: 157, length: 100 },
    /** "ustar\0" (POSIX) or "ustar " (GNU, whose version field is then " \0"). */
    magic: { offset: 257, length: 6 },
    version: { offset: 263, length: 2 },
    uname: { offset: 265, length: 32 },
    gname: { offset: 297, length: 32 },
    devmajor: { offset: 329, length: 8 },
    devminor: { offset: 337, length: 8 },
    /** Ustar only: the name's leading directories, joined to `name` with a "/". */
    prefix: { offset: 345, length: 155 },
  } as const satisfies Record<string, HeaderField>,
);

/** The header formats the reader accepts (v7 headers have no magic and are refused). */
export type HeaderFormat = "ustar" | "gnu";

const CHECKSUM_START = HEADER.checksum.offset;
const CHECKSUM_END = CHECKSUM_START + HEADER.checksum.length;
const MAGIC = HEADER.magic.offset;
const TYPEFLAG = HEADER.typeflag.offset;

/** Padding after `size` bytes of entry data, up to the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** True for an all-zero block: half of the end-of-archive marker. */
export function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * True when the stored checksum is the unsigned sum of the block with the checksum field
 * counted as spaces; or, as GNU tar also accepts, the signed sum some historic writers stored.
 * `words`, when given, is the same block as 128 32-bit words (a view of `h`'s buffer): the
 * unsigned sum then takes four bytes a step.
 */
export function checksumMatches(h: Uint8Array, words?: Uint32Array): boolean {
  const value = numericField(h, HEADER.checksum);
  if (!Number.isFinite(value)) return false;
  let unsigned = words ? wordByteSum(words) : byteSum(h);
  for (let i = CHECKSUM_START; i < CHECKSUM_END; i++) unsigned += 0x20 - h[i];
  if (value === unsigned) return true;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= CHECKSUM_START && i < CHECKSUM_END ? 0x20 : h[i];
    signed += b >= 0x80 ? b - 256 : b;
  }
  return value === signed;
}

function byteSum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  return sum;
}

/**
 * The sum of the bytes of a block, from its 128 words: each step adds bytes 0 and 2 into one
 * 16-bit lane and bytes 1 and 3 into the other, and neither lane can reach 65,536 in 128 steps.
 */
function wordByteSum(w: Uint32Array): number {
  let lanes = 0;
  for (let i = 0; i < BLOCK / 4; i++) {
    const x = w[i];
    lanes += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
  }
  return (lanes & 0xffff) + (lanes >>> 16);
}

/** True when the magic field starts with "ustar", whatever follows (any ustar-like format). */
export function hasUstarMagic(h: Uint8Array): boolean {
  return h[MAGIC] === 0x75 && h[MAGIC + 1] === 0x73 && h[MAGIC + 2] === 0x74 &&
    h[MAGIC + 3] === 0x61 && h[MAGIC + 4] === 0x72;
}

/** The header's format by its magic and version, or undefined when it is neither. */
export function headerFormat(h: Uint8Array): HeaderFormat | undefined {
  if (!hasUstarMagic(h)) return undefined;
  // POSIX: "ustar" NUL, then any version. GNU: "ustar" space, then version " " NUL.
  if (h[MAGIC + 5] === 0) return "ustar";
  if (h[MAGIC + 5] === 0x20 && h[MAGIC + 6] === 0x20 && h[MAGIC + 7] === 0) return "gnu";
  return undefined;
}

/** The type flag character ("0", "5", "x", ...; "\0" for old regular files). */
export function typeflagOf(h: Uint8Array): string {
  return String.fromCharCode(h[TYPEFLAG]);
}

/** Where a NUL-terminated field ends: its first NUL, or its end. */
export function fieldEnd(h: Uint8Array, f: HeaderField): number {
  const end = f.offset + f.length;
  for (let i = f.offset; i < end; i++) if (h[i] === 0) return i;
  return end;
}

const NO_BYTES = new Uint8Array(0);

/**
 * The entry name the header itself holds (before pax or GNU long names override it): ustar's
 * `prefix` + "/" + `name`, or `name` alone. A copy: the header block is reused.
 */
export function headerName(h: Uint8Array, format: HeaderFormat): Uint8Array {
  const nameEnd = fieldEnd(h, HEADER.name);
  const prefix = HEADER.prefix.offset;
  const prefixEnd = format === "ustar" ? fieldEnd(h, HEADER.prefix) : prefix;
  if (prefixEnd === prefix) return copyOut(h, 0, nameEnd);
  const plen = prefixEnd - prefix;
  const name = take(plen + 1 + nameEnd);
  for (let i = 0; i < plen; i++) name[i] = h[prefix + i];
  name[plen] = 0x2f;
  for (let i = 0; i < nameEnd; i++) name[plen + 1 + i] = h[i];
  return name;
}

/** The link target the header itself holds (a copy; empty when there is none). */
export function headerLinkname(h: Uint8Array): Uint8Array {
  const start = HEADER.linkname.offset;
  const end = fieldEnd(h, HEADER.linkname);
  return end === start ? NO_BYTES : copyOut(h, start, end);
}

/**
 * Names leave the reused header block as views of a shared slab: a small typed array each,
 * where a copy of its own would allocate an ArrayBuffer per name (measured as the largest cost
 * of reading a small entry, see `bench/tar_parse.ts`). A slab lives while any name taken from
 * it does; names are at most 256 bytes, and entries do not outlive their layer.
 */
const SLAB_BYTES = 16384;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

function take(length: number): Uint8Array {
  if (length > SLAB_BYTES - slabUsed) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, length);
  slabUsed += length;
  return out;
}

function copyOut(h: Uint8Array, start: number, end: number): Uint8Array {
  const out = take(end - start);
  for (let i = start; i < end; i++) out[i - start] = h[i];
  return out;
}

/** An ASCII-ish NUL-terminated field as a string (user and group names, shown only). */
export function latinField(h: Uint8Array, f: HeaderField): string {
  const end = fieldEnd(h, f);
  return end === f.offset
    ? ""
    : String.fromCharCode.apply(null, h.subarray(f.offset, end) as unknown as number[]);
}

/** The bytes of a field: up to its first NUL, or all of them with `raw`. */
export function fieldBytes(h: Uint8Array, f: HeaderField, raw = false): Uint8Array {
  return h.subarray(f.offset, raw ? f.offset + f.length : fieldEnd(h, f));
}

/**
 * {@linkcode parseNumeric} without a result object, for the fields every entry has: the value,
 * NaN when the field is not a number, Infinity when it overflows.
 */
export function numericField(h: Uint8Array, f: HeaderField): number {
  const off = f.offset;
  const first = h[off];
  if (first === 0x80 || first === 0xff) {
    const r = parseNumeric(h, f);
    return r.kind === "ok" ? r.value : r.kind === "overflow" ? Infinity : NaN;
  }
  let i = off;
  const end = off + f.length;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  const digits = i;
  while (i < end && h[i] >= 0x30 && h[i] <= 0x37) v = v * 8 + (h[i++] - 0x30);
  if (i === digits) return NaN;
  while (i < end && (h[i] === 0 || h[i] === 0x20)) i++;
  if (i !== end) return NaN;
  return Number.isSafeInteger(v) ? v : Infinity;
}

/** A numeric field's value, or why it has none. */
export type NumResult = { kind: "ok"; value: number } | { kind: "bad" } | { kind: "overflow" };

/**
 * A numeric header field: octal digits after optional leading spaces, ended by NUL or space
 * (or the field's end); or GNU base-256 (first byte 0x80 positive, 0xff negative).
 */
export function parseNumeric(h: Uint8Array, f: HeaderField): NumResult {
  const off = f.offset;
  const len = f.length;
  const first = h[off];
  if (first === 0x80 || first === 0xff) {
    // Base-256: big-endian two's complement; negatives are computed from the inverted bytes.
    const neg = first === 0xff;
    let v = 0;
    for (let i = 1; i < len; i++) {
      v = v * 256 + (neg ? 255 - h[off + i] : h[off + i]);
      if (!Number.isSafeInteger(v)) return { kind: "overflow" };
    }
    return { kind: "ok", value: neg ? -(v + 1) : v };
  }
  let i = off;
  const end = off + len;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  while (i < end && h[i] >= 0x30 && h[i] <= 0x37) {
    v = v * 8 + (h[i] - 0x30);
    digits++;
    i++;
  }
  if (digits === 0) return { kind: "bad" };
  while (i < end && (h[i] === 0 || h[i] === 0x20)) i++;
  if (i !== end) return { kind: "bad" };
  if (!Number.isSafeInteger(v)) return { kind: "overflow" };
  return { kind: "ok", value: v };
}
