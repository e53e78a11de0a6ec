/**
 * The one strict, streaming tar reader. Validation and application both read through it, so
 * they cannot disagree about what a blob says.
 *
 * It understands ustar, pax (per-entry `x` and global `g`) and GNU long names/links (`L`, `K`),
 * and stops with a {@linkcode TarViolation} at anything it cannot read unambiguously: a bad
 * checksum, an unknown header format, malformed or oversized pax records, bad sizes, sparse
 * and volume headers, unknown entry types, truncation, data after the end marker. Names are
 * handed over as raw bytes: path rules live in `rules.ts`.
 *
 * @example
 * ```ts
 * import { openLayerSource } from "./source.ts";
 * import { TarReader } from "./reader.ts";
 * const reader = new TarReader(await openLayerSource("layer.tar"), { paxHeaderBytes: 1 << 20 });
 * for (let e = await reader.next(); e; e = await reader.next()) {
 *   console.log(e.type, e.size); // bodies are skipped unless read with reader.body()
 * }
 * ```
 * @module
 */
import {
  BLOCK,
  checksumMatches,
  fieldBytes,
  HEADER,
  type HeaderFormat,
  headerFormat,
  headerLinkname,
  headerName,
  isZeroBlock,
  numericField,
  padding,
  parseNumeric,
  typeflagOf,
} from "./header.ts";
import { sniffOtherCompression } from "./magic.ts";
import type { LayerSource } from "./source.ts";
import { decodePax, GlobalPax, parsePax, paxNumber, paxSize, type PaxValues } from "./pax.ts";
import { Refusal, type Rule, TarViolation } from "./violation.ts";

/** Kinds of entries the reader hands over; meta headers (x, g, L, K) are folded in. */
export type TarEntryType =
  | "file"
  | "directory"
  | "symlink"
  | "hardlink"
  | "char"
  | "block"
  | "fifo";

/** One entry, with every header field that was read (pax and GNU overrides applied). */
export interface TarEntry {
  type: TarEntryType;
  /** The raw type flag character ("0", "5", ...; "\0" for old regular files). */
  typeflag: string;
  /** Name bytes: pax `path`, GNU `L`, or ustar prefix + "/" + name. Unvalidated. */
  name: Uint8Array;
  /** Link target bytes: pax `linkpath`, GNU `K`, or the linkname field. Unvalidated. */
  linkname: Uint8Array;
  /** The name, lossily decoded, for messages. */
  displayName: string;
  /** Permission bits including setuid, setgid and sticky (file-type bits masked off). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, possibly fractional (pax) or negative. */
  mtime: number;
  /** Bytes of data that follow the header. */
  size: number;
  /** `ustar` (POSIX magic "ustar\0") or `gnu` (magic "ustar  \0"). */
  format: HeaderFormat;
  /** Byte offset of the first header of this entry (its first meta header, if any). */
  offset: number;
}

/** Reader options. */
export interface TarReaderOptions {
  /** Largest pax header or GNU long-name record accepted. */
  paxHeaderBytes: number;
}

const utf8Lossy = new TextDecoder("utf-8");

/** Streams entries out of a {@linkcode LayerSource}. */
export class TarReader {
  readonly #src: LayerSource;
  readonly #opts: TarReaderOptions;
  #chunk: Uint8Array = new Uint8Array(0);
  #off = 0;
  /** Offset in the tar stream of `#chunk[#off]`. */
  #pos = 0;
  /** Data bytes of the current entry not yet consumed, and its padding. */
  #bodyLeft = 0;
  #padLeft = 0;
  readonly #global: GlobalPax;
  #done = false;
  #first = true;
  readonly #hdr = new Uint8Array(BLOCK);
  /** The header block as words, for its checksum. */
  readonly #hdrWords = new Uint32Array(this.#hdr.buffer);
  /** Where pax and GNU long-name records are read (valid until the next record). */
  #scratch = new Uint8Array(0);
  /** Offset of the first header of the entry being read (its first meta header, if any). */
  #start = 0;
  /** Meta headers read so far for the entry that follows them. */
  #pax: PaxValues | null = null;
  #longName: Uint8Array | null = null;
  #longLink: Uint8Array | null = null;

  constructor(src: LayerSource, opts: TarReaderOptions) {
    this.#src = src;
    this.#opts = opts;
    this.#global = new GlobalPax(opts.paxHeaderBytes);
  }

  /** Offset in the tar stream of the next unread byte. */
  get position(): number {
    return this.#pos;
  }

  /** The next entry, or null after the end-of-archive marker. Skips an unread body. */
  async next(): Promise<TarEntry | null> {
    if (this.#done) return null;
    // The common case, a small entry whose data is in the chunk at hand, costs no await.
    if (!this.#skipInChunk()) await this.#skipRest();
    this.#start = this.#pos;
    this.#pax = this.#longName = this.#longLink = null;
    for (;;) {
      const offset = this.#pos;
      if (!this.#headerInChunk() && !(await this.#readHeader(offset))) return null;
      const format = this.#checkHeader(offset);
      const typeflag = typeflagOf(this.#hdr);
      const size = this.#headerSize(offset);
      if (!isMeta(typeflag)) return this.#entry(format, typeflag, size, offset);
      if (typeflag === "x" || typeflag === "g") await this.#readPax(typeflag === "g", size, offset);
      else await this.#readLongName(typeflag === "L", size, offset);
    }
  }

  /**
   * Hand the current entry's data to `sink` chunk by chunk (chunks are views into the read
   * buffer, valid only during the call). Call at most once per entry, before `next`.
   */
  async body(sink: (chunk: Uint8Array) => void): Promise<void> {
    while (this.#bodyLeft > 0) {
      if (this.#off >= this.#chunk.length && !(await this.#fill())) {
        throw this.#refuse("truncated", null, this.#pos, "the archive ends inside an entry's data");
      }
      const n = Math.min(this.#bodyLeft, this.#chunk.length - this.#off);
      sink(this.#chunk.subarray(this.#off, this.#off + n));
      this.#off += n;
      this.#pos += n;
      this.#bodyLeft -= n;
    }
  }

  /**
   * Take the next header block from the chunk at hand when it holds one that is not a zero
   * block; false otherwise, and nothing is taken.
   */
  #headerInChunk(): boolean {
    const off = this.#off;
    if (this.#chunk.length - off < BLOCK || this.#chunk[off + HEADER.magic.offset] === 0) {
      return false; // a block without magic may be a zero block: #readHeader decides
    }
    this.#hdr.set(this.#chunk.subarray(off, off + BLOCK));
    this.#off = off + BLOCK;
    this.#pos += BLOCK;
    return true;
  }

  /** Read the next header block; false at the end-of-archive marker (checked to the end). */
  async #readHeader(offset: number): Promise<boolean> {
    if (!(await this.#readExact(this.#hdr))) {
      throw this.#refuse(
        "truncated",
        null,
        offset,
        this.#pos === 0
          ? "the file is empty: not a tar archive"
          : "the archive ends without its end-of-archive marker (two zero blocks)",
      );
    }
    if (!isZeroBlock(this.#hdr)) return true;
    if (this.#pax || this.#longName || this.#longLink) {
      throw this.#refuse(
        "meta-dangling",
        null,
        this.#start,
        "a pax or GNU long-name header is followed by the end marker instead of an entry",
      );
    }
    await this.#finish(offset);
    return false;
  }

  /** Refuse a header that does not add up or is not ustar or GNU; its format otherwise. */
  #checkHeader(offset: number): HeaderFormat {
    const hdr = this.#hdr;
    const first = this.#first;
    this.#first = false;
    if (!checksumMatches(hdr, this.#hdrWords)) {
      const other = first ? sniffOtherCompression(hdr) : undefined;
      if (other) {
        throw this.#refuse(
          "compression-unsupported",
          null,
          0,
          `the file is ${other}-compressed; only plain and gzip-compressed tar are accepted`,
        );
      }
      throw this.#refuseHeader(
        "header-checksum",
        offset,
        "the header checksum does not match its contents",
      );
    }
    const format = headerFormat(hdr);
    if (!format) {
      throw this.#refuseHeader(
        "header-format",
        offset,
        "the header is neither POSIX ustar nor GNU tar (v7 and unknown formats are refused)",
      );
    }
    return format;
  }

  /** The size field: bytes of data after the header. */
  #headerSize(offset: number): number {
    const hdr = this.#hdr;
    const value = numericField(hdr, HEADER.size);
    if (Number.isSafeInteger(value) && value >= 0) return value;
    const r = parseNumeric(hdr, HEADER.size);
    if (r.kind === "bad") {
      const field = utf8Lossy.decode(fieldBytes(hdr, HEADER.size, true));
      throw this.#refuseHeader(
        "size-unparseable",
        offset,
        `the size field ${JSON.stringify(field)} is not a number`,
      );
    }
    if (r.kind === "overflow") {
      throw this.#refuseHeader("size-overflow", offset, "the size field overflows");
    }
    if (r.value < 0) {
      throw this.#refuseHeader("size-negative", offset, `the size field is negative (${r.value})`);
    }
    return r.value;
  }

  /** A pax header: the next entry's own (`x`), or records for every later entry (`g`). */
  async #readPax(global: boolean, size: number, offset: number): Promise<void> {
    if (global && (this.#pax || this.#longName || this.#longLink)) {
      throw this.#refuseHeader(
        "meta-dangling",
        offset,
        "a global pax header sits between an entry's own meta headers and the entry",
      );
    }
    if (!global && this.#pax) {
      throw this.#refuseHeader("meta-repeated", offset, "two pax headers for one entry");
    }
    const limit = this.#opts.paxHeaderBytes;
    if (size > limit) {
      throw this.#refuseHeader(
        "pax-too-large",
        offset,
        `a pax header of ${size} bytes exceeds the limit of ${limit}`,
      );
    }
    const data = await this.#readBody(size);
    try {
      const values = decodePax(parsePax(data), global);
      if (global) this.#global.apply(values);
      else this.#pax = values;
    } catch (err) {
      if (err instanceof Refusal) throw this.#refuseHeader(err.rule, offset, err.message);
      throw err;
    }
  }

  /** A GNU long name (`L`) or long link target (`K`) for the next entry. */
  async #readLongName(isName: boolean, size: number, offset: number): Promise<void> {
    if ((isName ? this.#longName : this.#longLink) !== null) {
      throw this.#refuseHeader(
        "meta-repeated",
        offset,
        `two GNU long-${isName ? "name" : "link"} headers for one entry`,
      );
    }
    const limit = this.#opts.paxHeaderBytes;
    if (size > limit) {
      throw this.#refuseHeader(
        "longname-too-large",
        offset,
        `a GNU long-name record of ${size} bytes exceeds the limit of ${limit}`,
      );
    }
    const body = stripTrailingNuls(await this.#readBody(size));
    if (isName) this.#longName = body;
    else this.#longLink = body;
  }

  /**
   * The entry the current header describes, its meta headers applied. Once per entry, for every
   * entry: no closures, no copies of empty fields; messages are built only on the way to a
   * refusal.
   */
  #entry(format: HeaderFormat, typeflag: string, headerSize: number, offset: number): TarEntry {
    const hdr = this.#hdr;
    const type = ENTRY_TYPES[typeflag];
    if (!type) {
      const [rule, message] = REFUSED_TYPES[typeflag] ??
        ["unknown-type", `unknown entry type ${JSON.stringify(typeflag)}`];
      throw this.#refuseHeader(rule, offset, message);
    }
    const pax = this.#global.forEntry(this.#pax);
    const name = pax.path !== undefined
      ? encoder.encode(pax.path)
      : this.#longName ?? headerName(hdr, format);
    const linkname = pax.linkpath !== undefined
      ? encoder.encode(pax.linkpath)
      : this.#longLink ?? headerLinkname(hdr);
    try {
      const mode = numericField(hdr, HEADER.mode);
      const uid = pax.uid === undefined ? numericField(hdr, HEADER.uid) : paxNumber(pax.uid, "uid");
      const gid = pax.gid === undefined ? numericField(hdr, HEADER.gid) : paxNumber(pax.gid, "gid");
      const mtime = pax.mtime === undefined
        ? numericField(hdr, HEADER.mtime)
        : paxNumber(pax.mtime, "mtime");
      checkNumbers(mode, uid, gid, mtime);
      const size = pax.size === undefined ? headerSize : paxSize(pax.size);
      if (type !== "file" && size !== 0) {
        throw new Refusal("size-unexpected", `a ${type} entry declares ${size} bytes of data`);
      }
      this.#bodyLeft = size;
      this.#padLeft = padding(size);
      return new Entry({
        type,
        typeflag,
        name,
        linkname,
        mode: mode & 0o7777,
        uid,
        gid,
        mtime,
        size,
        format,
        offset: this.#start,
      });
    } catch (err) {
      if (err instanceof Refusal) throw this.#refuse(err.rule, name, this.#start, err.message);
      throw err;
    }
  }

  /** Skip the rest of the current entry when it lies within the chunk at hand. */
  #skipInChunk(): boolean {
    const left = this.#bodyLeft + this.#padLeft;
    if (left > this.#chunk.length - this.#off) return false;
    this.#off += left;
    this.#pos += left;
    this.#bodyLeft = this.#padLeft = 0;
    return true;
  }

  async #skipRest(): Promise<void> {
    let left = this.#bodyLeft + this.#padLeft;
    this.#bodyLeft = this.#padLeft = 0;
    while (left > 0) {
      const avail = this.#chunk.length - this.#off;
      if (avail === 0) {
        if (left > BLOCK * 16 && this.#src.skip(left)) {
          this.#pos += left;
          return;
        }
        if (!(await this.#fill())) {
          throw this.#refuse(
            "truncated",
            null,
            this.#pos,
            "the archive ends inside an entry's data",
          );
        }
        continue;
      }
      const n = Math.min(avail, left);
      this.#off += n;
      this.#pos += n;
      left -= n;
    }
  }

  async #fill(): Promise<boolean> {
    const c = await this.#src.next();
    if (c === null) return false;
    this.#chunk = c;
    this.#off = 0;
    return true;
  }

  /** Fill `dst` completely. False at a clean end of stream; a truncation violation midway. */
  async #readExact(dst: Uint8Array): Promise<boolean> {
    let got = 0;
    while (got < dst.length) {
      if (this.#off >= this.#chunk.length && !(await this.#fill())) {
        if (got === 0) return false;
        throw this.#refuse(
          "truncated",
          null,
          this.#pos,
          "the archive ends inside a header or data block",
        );
      }
      const n = Math.min(dst.length - got, this.#chunk.length - this.#off);
      dst.set(this.#chunk.subarray(this.#off, this.#off + n), got);
      got += n;
      this.#off += n;
      this.#pos += n;
    }
    return true;
  }

  /** Read a meta header's data (bounded by the caller) and its padding. */
  async #readBody(size: number): Promise<Uint8Array> {
    // One buffer, reused: a 1 MiB pax header per entry otherwise leaves 1 MiB of garbage per
    // entry, which the collector was measured to let pile up (RSS grew with the layer).
    // Callers copy what they keep (decoded values, sliced names) before the next read.
    const need = size + padding(size);
    if (this.#scratch.length < need) this.#scratch = new Uint8Array(Math.max(need, 4096));
    const buf = this.#scratch.subarray(0, need);
    if (!(await this.#readExact(buf)) && buf.length > 0) {
      throw this.#refuse(
        "truncated",
        null,
        this.#pos,
        "the archive ends inside a pax or long-name header",
      );
    }
    return buf.subarray(0, size);
  }

  /** After the first zero block: a second one, then nothing but zeros to the end. */
  async #finish(offset: number): Promise<void> {
    const second = new Uint8Array(BLOCK);
    if (!(await this.#readExact(second))) {
      throw this.#refuse(
        "truncated",
        null,
        offset,
        "the end-of-archive marker has one zero block instead of two",
      );
    }
    if (!isZeroBlock(second)) {
      throw this.#refuse(
        "zero-block",
        null,
        offset,
        "a single zero block sits in the middle of the archive",
      );
    }
    for (;;) {
      const i = firstNonZero(this.#chunk, this.#off);
      if (i >= 0) {
        throw this.#refuse(
          "trailing-data",
          null,
          this.#pos + i - this.#off,
          "data follows the end-of-archive marker (a concatenated archive?)",
        );
      }
      this.#pos += this.#chunk.length - this.#off;
      this.#off = this.#chunk.length;
      if (!(await this.#fill())) break;
    }
    this.#done = true;
  }

  /** A violation that stops reading, about the entry `name` (null: the archive itself). */
  #refuse(rule: Rule, name: Uint8Array | null, offset: number, message: string): TarViolation {
    return new TarViolation({ rule, entry: name ? shownOf(name) : "", message, offset });
  }

  /** A violation about the header just read, shown by the name field it holds. */
  #refuseHeader(rule: Rule, offset: number, message: string): TarViolation {
    return this.#refuse(rule, fieldBytes(this.#hdr, HEADER.name), offset, message);
  }
}

/** The fields of an entry, as {@linkcode TarReader} builds it. */
type EntryFields = Omit<TarEntry, "displayName">;

/** A class, not an object literal with a getter: V8 keeps one fast shape for every entry. */
class Entry implements TarEntry {
  readonly type: TarEntryType;
  readonly typeflag: string;
  readonly name: Uint8Array;
  readonly linkname: Uint8Array;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly size: number;
  readonly format: HeaderFormat;
  readonly offset: number;

  constructor(f: EntryFields) {
    this.type = f.type;
    this.typeflag = f.typeflag;
    this.name = f.name;
    this.linkname = f.linkname;
    this.mode = f.mode;
    this.uid = f.uid;
    this.gid = f.gid;
    this.mtime = f.mtime;
    this.size = f.size;
    this.format = f.format;
    this.offset = f.offset;
  }

  /** Decoded only when a message needs it. */
  get displayName(): string {
    return shownOf(this.name);
  }
}

/**
 * Refuse a mode, owner or time that is not a number in range (malformed pax values were refused
 * while they were read). The order is fixed, so one header always names the same rule.
 */
function checkNumbers(mode: number, uid: number, gid: number, mtime: number): void {
  const notNumber = !Number.isFinite(mode)
    ? "mode"
    : !Number.isFinite(uid)
    ? "uid"
    : !Number.isFinite(gid)
    ? "gid"
    : !Number.isFinite(mtime)
    ? "mtime"
    : undefined;
  if (notNumber) throw new Refusal("field-unparseable", `the ${notNumber} field is not a number`);
  if (uid < 0 || uid > 0xfffffffe) throw new Refusal("owner-range", `uid ${uid} is out of range`);
  if (gid < 0 || gid > 0xfffffffe) throw new Refusal("owner-range", `gid ${gid} is out of range`);
  if (mode < 0) throw new Refusal("field-unparseable", "the mode field is negative");
  if (Math.abs(mtime) > 2 ** 40) {
    throw new Refusal("mtime-range", `mtime ${mtime} is out of range`);
  }
}

/** Meta headers: they describe the entry that follows them. */
function isMeta(typeflag: string): boolean {
  return typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K";
}

const ENTRY_TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
};

/** Type flags known and refused, with the rule and the reason. */
const REFUSED_TYPES: Record<string, [Rule, string]> = {
  S: ["sparse", "GNU sparse files are refused"],
  V: ["volume", "GNU volume labels are refused"],
  M: ["volume", "multi-volume continuation headers are refused"],
};

/**
 * Index of the first non-zero byte of `b` at or after `from`, or -1. Four bytes at a time
 * where aligned: padding after the end marker may be gigabytes (of a tiny gzip).
 */
function firstNonZero(b: Uint8Array, from: number): number {
  let i = from;
  while (i < b.length && (b.byteOffset + i) % 4 !== 0) {
    if (b[i] !== 0) return i;
    i++;
  }
  const words = Math.floor((b.length - i) / 4);
  if (words > 0) {
    const w = new Int32Array(b.buffer, b.byteOffset + i, words);
    let j = 0;
    while (j < words && w[j] === 0) j++;
    i += j * 4;
  }
  for (; i < b.length; i++) if (b[i] !== 0) return i;
  return -1;
}

const encoder = new TextEncoder();
/** An entry's name for a message, decoded lossily. */
function shownOf(name: Uint8Array): string {
  return utf8Lossy.decode(name).slice(0, 300);
}

function stripTrailingNuls(b: Uint8Array): Uint8Array {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.slice(0, end);
}
