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
  type HeaderField,
  headerFormat,
  headerLinkname,
  headerName,
  isZeroBlock,
  latinField,
  numericField,
  padding,
  parseNumeric,
  typeflagOf,
} from "./header.ts";
import { sniffOtherCompression } from "./magic.ts";
import type { LayerSource } from "./source.ts";
import { TarViolation, type Violation } from "./violation.ts";

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
  /** User and group names (pax or header), for information: owners are set by number. */
  uname: string;
  gname: string;
  /** Seconds since the epoch, possibly fractional (pax) or negative. */
  mtime: number;
  /** Bytes of data that follow the header. */
  size: number;
  /** `ustar` (POSIX magic "ustar\0") or `gnu` (magic "ustar  \0"). */
  format: "ustar" | "gnu";
  /** Byte offset of the first header of this entry (its first meta header, if any). */
  offset: number;
}

/** Reader options. */
export interface TarReaderOptions {
  /** Largest pax header or GNU long-name record accepted. */
  paxHeaderBytes: number;
}

/** Pax keys whose values set entry fields. */
const HONOURED_KEYS = new Set<string>(
  [
    "path",
    "linkpath",
    "size",
    "uid",
    "gid",
    "uname",
    "gname",
    "mtime",
  ] satisfies (keyof Honoured)[],
);
/** Honoured keys a global header may set (`path`, `linkpath` and `size` are refused there). */
const GLOBAL_HONOURED = ["uid", "gid", "uname", "gname", "mtime"] as const;

/** The values of honoured pax keys in force for one entry: all an entry takes from pax. */
interface Honoured {
  path?: string;
  linkpath?: string;
  size?: string;
  uid?: string;
  gid?: string;
  uname?: string;
  gname?: string;
  mtime?: string;
}
/**
 * Pax keys ignored on purpose: times we do not keep, comments, charsets (names must be UTF-8
 * anyway), and vendor metadata (xattrs, ACLs, file flags, inode numbers) that a layer cannot use
 * to reach outside the image. Ignoring xattrs means file capabilities are not restored.
 */
const IGNORED_KEYS = new Set(["atime", "ctime", "comment", "charset", "hdrcharset"]);
const IGNORED_PREFIXES = [
  "SCHILY.xattr.",
  "SCHILY.acl.",
  "LIBARCHIVE.",
  "SCHILY.dev",
  "SCHILY.ino",
  "SCHILY.nlink",
  "SCHILY.fflags",
  "SCHILY.release",
  "SCHILY.archtype",
];
/** Pax keys that describe sparse files (GNU 0.0/0.1/1.0, star, Solaris): refused. */
const SPARSE_PREFIXES = ["GNU.sparse.", "SCHILY.realsize", "SUN.holesdata"];

/** The honoured values of an entry that has none (shared, never written to). */
const NO_PAX: Honoured = Object.freeze({});
const utf8Lossy = new TextDecoder("utf-8");
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

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
  /**
   * Global pax records in force. An entry takes only honoured values from them, so only those
   * are kept as values (a handful of keys: an entry costs O(1) whatever the global headers
   * hold); every other key in force is kept as its size, for the limit on their total.
   */
  #global: Honoured = {};
  #hasGlobal = false;
  /** Key -> key length + value length, of every global record in force; and their sum. */
  readonly #globalSizes = new Map<string, number>();
  #globalBytes = 0;
  #done = false;
  #first = true;
  readonly #hdr = new Uint8Array(BLOCK);
  /** Where pax and GNU long-name records are read (valid until the next record). */
  #scratch = new Uint8Array(0);

  constructor(src: LayerSource, opts: TarReaderOptions) {
    this.#src = src;
    this.#opts = opts;
  }

  /** Offset in the tar stream of the next unread byte. */
  get position(): number {
    return this.#pos;
  }

  /** The next entry, or null after the end-of-archive marker. Skips an unread body. */
  async next(): Promise<TarEntry | null> {
    if (this.#done) return null;
    await this.#skipRest();
    let pax: Record<string, string | null> | null = null;
    let longName: Uint8Array | null = null;
    let longLink: Uint8Array | null = null;
    let start = -1;
    for (;;) {
      const offset = this.#pos;
      if (start < 0) start = offset;
      const hdr = this.#hdr;
      if (!(await this.#readExact(hdr))) {
        throw this.#fatal(
          "truncated",
          "",
          offset,
          this.#pos === 0
            ? "the file is empty: not a tar archive"
            : "the archive ends without its end-of-archive marker (two zero blocks)",
        );
      }
      if (isZeroBlock(hdr)) {
        if (pax || longName || longLink) {
          throw this.#fatal(
            "meta-dangling",
            "",
            start,
            "a pax or GNU long-name header is followed by the end marker instead of an entry",
          );
        }
        await this.#finish(offset);
        return null;
      }
      const first = this.#first;
      this.#first = false;
      if (!checksumMatches(hdr)) {
        const other = first ? sniffOtherCompression(hdr) : undefined;
        if (other) {
          throw this.#fatal(
            "compression-unsupported",
            "",
            0,
            `the file is ${other}-compressed; only plain and gzip-compressed tar are accepted`,
          );
        }
        throw this.#fatal(
          "header-checksum",
          lossyField(hdr, HEADER.name),
          offset,
          "the header checksum does not match its contents",
        );
      }
      const format = headerFormat(hdr);
      const shown = () => lossyField(hdr, HEADER.name); // decoded only for a message
      if (!format) {
        throw this.#fatal(
          "header-format",
          shown,
          offset,
          "the header is neither POSIX ustar nor GNU tar (v7 and unknown formats are refused)",
        );
      }
      const typeflag = typeflagOf(hdr);
      const size = this.#parseSize(hdr, shown, offset);
      switch (typeflag) {
        case "x":
        case "g": {
          if (typeflag === "g" && (pax || longName || longLink)) {
            throw this.#fatal(
              "meta-dangling",
              shown,
              offset,
              "a global pax header sits between an entry's own meta headers and the entry",
            );
          }
          if (typeflag === "x" && pax) {
            throw this.#fatal("meta-repeated", shown, offset, "two pax headers for one entry");
          }
          if (size > this.#opts.paxHeaderBytes) {
            throw this.#fatal(
              "pax-too-large",
              shown,
              offset,
              `a pax header of ${size} bytes exceeds the limit of ${this.#opts.paxHeaderBytes}`,
            );
          }
          const records = this.#checkPaxKeys(
            parsePax(await this.#readBody(size), shown, offset),
            typeflag === "g",
            shown,
            offset,
          );
          if (typeflag === "x") pax = records;
          else {
            // O(records of this header): a later tiny global header does not revisit the
            // records an earlier one left in force.
            for (const [k, v] of Object.entries(records)) {
              this.#globalBytes -= this.#globalSizes.get(k) ?? 0;
              if (v === null) this.#globalSizes.delete(k);
              else {
                this.#globalSizes.set(k, k.length + v.length);
                this.#globalBytes += k.length + v.length;
              }
            }
            for (const k of GLOBAL_HONOURED) {
              if (!(k in records)) continue;
              const v = records[k];
              if (v === null) delete this.#global[k];
              else this.#global[k] = v;
            }
            this.#hasGlobal = GLOBAL_HONOURED.some((k) => this.#global[k] !== undefined);
            // Many global headers, each within the limit, must not add up to an unbounded set.
            if (this.#globalBytes > this.#opts.paxHeaderBytes) {
              throw this.#fatal(
                "pax-too-large",
                shown,
                offset,
                `global pax records in force add up to more than ${this.#opts.paxHeaderBytes} bytes`,
              );
            }
          }
          continue;
        }
        case "L":
        case "K": {
          if ((typeflag === "L" ? longName : longLink) !== null) {
            throw this.#fatal(
              "meta-repeated",
              shown,
              offset,
              `two GNU long-${typeflag === "L" ? "name" : "link"} headers for one entry`,
            );
          }
          if (size > this.#opts.paxHeaderBytes) {
            throw this.#fatal(
              "longname-too-large",
              shown,
              offset,
              `a GNU long-name record of ${size} bytes exceeds the limit of ${this.#opts.paxHeaderBytes}`,
            );
          }
          const body = stripTrailingNuls(await this.#readBody(size));
          if (typeflag === "L") longName = body;
          else longLink = body;
          continue;
        }
        case "S":
          throw this.#fatal("sparse", shown, offset, "GNU sparse files are refused");
        case "V":
          throw this.#fatal("volume", shown, offset, "GNU volume labels are refused");
        case "M":
          throw this.#fatal(
            "volume",
            shown,
            offset,
            "multi-volume continuation headers are refused",
          );
      }
      const type = ENTRY_TYPES[typeflag];
      if (!type) {
        throw this.#fatal(
          "unknown-type",
          shown,
          offset,
          `unknown entry type ${JSON.stringify(typeflag)}`,
        );
      }
      let merged: Honoured = NO_PAX;
      if (pax) merged = mergeHonoured(this.#global, pax);
      else if (this.#hasGlobal) merged = this.#global;
      const entry = this.#entryFrom(
        hdr,
        format,
        typeflag,
        type,
        size,
        merged,
        longName,
        longLink,
        start,
      );
      if (type !== "file" && entry.size !== 0) {
        throw this.#fatal(
          "size-unexpected",
          entry.displayName,
          start,
          `a ${type} entry declares ${entry.size} bytes of data`,
        );
      }
      this.#bodyLeft = entry.size;
      this.#padLeft = padding(entry.size);
      return entry;
    }
  }

  /**
   * Hand the current entry's data to `sink` chunk by chunk (chunks are views into the read
   * buffer, valid only during the call). Call at most once per entry, before `next`.
   */
  async body(sink: (chunk: Uint8Array) => void): Promise<void> {
    while (this.#bodyLeft > 0) {
      if (this.#off >= this.#chunk.length && !(await this.#fill())) {
        throw this.#fatal("truncated", "", this.#pos, "the archive ends inside an entry's data");
      }
      const n = Math.min(this.#bodyLeft, this.#chunk.length - this.#off);
      sink(this.#chunk.subarray(this.#off, this.#off + n));
      this.#off += n;
      this.#pos += n;
      this.#bodyLeft -= n;
    }
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
          throw this.#fatal("truncated", "", this.#pos, "the archive ends inside an entry's data");
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
        throw this.#fatal(
          "truncated",
          "",
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
      throw this.#fatal(
        "truncated",
        "",
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
      throw this.#fatal(
        "truncated",
        "",
        offset,
        "the end-of-archive marker has one zero block instead of two",
      );
    }
    if (!isZeroBlock(second)) {
      throw this.#fatal(
        "zero-block",
        "",
        offset,
        "a single zero block sits in the middle of the archive",
      );
    }
    for (;;) {
      const i = firstNonZero(this.#chunk, this.#off);
      if (i >= 0) {
        throw this.#fatal(
          "trailing-data",
          "",
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

  #parseSize(hdr: Uint8Array, shown: Shown, offset: number): number {
    const value = numericField(hdr, HEADER.size);
    if (Number.isSafeInteger(value) && value >= 0) return value;
    const r = parseNumeric(hdr, HEADER.size);
    if (r.kind === "bad") {
      throw this.#fatal(
        "size-unparseable",
        shown,
        offset,
        `the size field ${JSON.stringify(lossyField(hdr, HEADER.size, true))} is not a number`,
      );
    }
    if (r.kind === "overflow") {
      throw this.#fatal("size-overflow", shown, offset, "the size field overflows");
    }
    if (r.value < 0) {
      throw this.#fatal("size-negative", shown, offset, `the size field is negative (${r.value})`);
    }
    return r.value;
  }

  /** Refuse what must be refused; decode honoured values strictly and the rest lossily. */
  #checkPaxKeys(
    records: Record<string, Uint8Array | null>,
    global: boolean,
    shown: Shown,
    offset: number,
  ): Record<string, string | null> {
    const out: Record<string, string | null> = {};
    for (const [key, raw] of Object.entries(records)) {
      if (SPARSE_PREFIXES.some((p) => key.startsWith(p))) {
        throw this.#fatal(
          "sparse",
          shown,
          offset,
          `pax key '${key}' describes a sparse file; sparse files are refused`,
        );
      }
      if (key.startsWith("GNU.volume.")) {
        throw this.#fatal(
          "volume",
          shown,
          offset,
          `pax key '${key}' belongs to a multi-volume archive`,
        );
      }
      if (global && (key === "path" || key === "linkpath" || key === "size")) {
        throw this.#fatal(
          "pax-global-key",
          shown,
          offset,
          `a global pax header may not set '${key}' for every entry`,
        );
      }
      if (HONOURED_KEYS.has(key)) {
        if (raw === null) {
          out[key] = null;
          continue;
        }
        if (raw.includes(0)) {
          throw this.#fatal("name-nul", shown, offset, `pax '${key}' contains a NUL byte`);
        }
        try {
          out[key] = utf8Strict.decode(raw);
        } catch {
          throw this.#fatal("name-utf8", shown, offset, `pax '${key}' is not valid UTF-8`);
        }
        continue;
      }
      if (!IGNORED_KEYS.has(key) && !IGNORED_PREFIXES.some((p) => key.startsWith(p))) {
        throw this.#fatal("pax-unknown-key", shown, offset, `unknown pax key '${key}'`);
      }
      // An ignored value sets nothing; a global one is decoded only for its share of the limit
      // on global records in force.
      out[key] = raw === null ? null : global ? utf8Lossy.decode(raw.subarray(0, 256)) : "";
    }
    return out;
  }

  #entryFrom(
    hdr: Uint8Array,
    format: "ustar" | "gnu",
    typeflag: string,
    type: TarEntryType,
    headerSize: number,
    pax: Honoured,
    longName: Uint8Array | null,
    longLink: Uint8Array | null,
    offset: number,
  ): TarEntry {
    // Once per entry, for every entry: no closures, no result objects, no copies of empty
    // fields. Messages are built only on the way to a refusal.
    let name: Uint8Array;
    if (pax.path !== undefined) name = encoder.encode(pax.path);
    else if (longName) name = longName;
    else name = headerName(hdr, format);
    let linkname: Uint8Array;
    if (pax.linkpath !== undefined) linkname = encoder.encode(pax.linkpath);
    else if (longLink) linkname = longLink;
    else linkname = headerLinkname(hdr);
    const mode = numericField(hdr, HEADER.mode);
    const uid = pax.uid !== undefined
      ? this.#paxNumber(pax.uid, "uid", name, offset)
      : numericField(hdr, HEADER.uid);
    const gid = pax.gid !== undefined
      ? this.#paxNumber(pax.gid, "gid", name, offset)
      : numericField(hdr, HEADER.gid);
    const mtime = pax.mtime !== undefined
      ? this.#paxNumber(pax.mtime, "mtime", name, offset)
      : numericField(hdr, HEADER.mtime);
    if (
      !Number.isFinite(mode) || !Number.isFinite(uid) || !Number.isFinite(gid) ||
      !Number.isFinite(mtime)
    ) {
      const what = !Number.isFinite(mode)
        ? "mode"
        : !Number.isFinite(uid)
        ? "uid"
        : !Number.isFinite(gid)
        ? "gid"
        : "mtime";
      throw this.#fatal(
        "field-unparseable",
        shownOf(name),
        offset,
        `the ${what} field is not a number`,
      );
    }
    if (uid < 0 || uid > 0xfffffffe) {
      throw this.#fatal("owner-range", shownOf(name), offset, `uid ${uid} is out of range`);
    }
    if (gid < 0 || gid > 0xfffffffe) {
      throw this.#fatal("owner-range", shownOf(name), offset, `gid ${gid} is out of range`);
    }
    if (mode < 0) {
      throw this.#fatal("field-unparseable", shownOf(name), offset, "the mode field is negative");
    }
    if (Math.abs(mtime) > 2 ** 40) {
      throw this.#fatal("mtime-range", shownOf(name), offset, `mtime ${mtime} is out of range`);
    }
    let size = headerSize;
    if (pax.size !== undefined) {
      if (!/^\d+$/.test(pax.size)) {
        throw this.#fatal(
          pax.size.startsWith("-") ? "size-negative" : "size-unparseable",
          shownOf(name),
          offset,
          `pax size ${JSON.stringify(pax.size.slice(0, 40))} is not a valid size`,
        );
      }
      size = Number(pax.size);
      if (!Number.isSafeInteger(size)) {
        throw this.#fatal("size-overflow", shownOf(name), offset, "pax size overflows");
      }
    }
    return new Entry(
      type,
      typeflag,
      name,
      linkname,
      mode & 0o7777,
      uid,
      gid,
      pax.uname ?? latinField(hdr, HEADER.uname),
      pax.gname ?? latinField(hdr, HEADER.gname),
      mtime,
      size,
      format,
      offset,
    );
  }

  /** A pax number (uid, gid: whole; mtime: may be negative and fractional), strictly. */
  #paxNumber(p: string, key: "uid" | "gid" | "mtime", name: Uint8Array, offset: number): number {
    const ok = key === "mtime" ? /^-?\d{1,15}(\.\d{1,9})?$/.test(p) : /^\d{1,15}$/.test(p);
    if (!ok) {
      throw this.#fatal(
        "field-unparseable",
        shownOf(name),
        offset,
        `pax ${key} ${JSON.stringify(p.slice(0, 40))} is not a valid number`,
      );
    }
    return Number(p);
  }

  #fatal(rule: string, entry: Shown, offset: number, message: string): TarViolation {
    const v: Violation = { rule, entry: text(entry), message, offset };
    return new TarViolation(v);
  }
}

/** A class, not an object literal with a getter: V8 keeps one fast shape for every entry. */
class Entry implements TarEntry {
  constructor(
    readonly type: TarEntryType,
    readonly typeflag: string,
    readonly name: Uint8Array,
    readonly linkname: Uint8Array,
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly uname: string,
    readonly gname: string,
    readonly mtime: number,
    readonly size: number,
    readonly format: "ustar" | "gnu",
    readonly offset: number,
  ) {}

  /** Decoded only when a message needs it. */
  get displayName(): string {
    return utf8Lossy.decode(this.name).slice(0, 300);
  }
}

/**
 * The honoured values in force for an entry with its own pax header: its records over the
 * global ones (an empty per-entry value unsets the key). O(honoured keys), never O(global keys).
 */
function mergeHonoured(global: Honoured, pax: Record<string, string | null>): Honoured {
  const out: Honoured = {};
  for (const k of HONOURED_KEYS as Set<keyof Honoured>) {
    const v = Object.hasOwn(pax, k) ? pax[k] : global[k];
    if (v !== null && v !== undefined) out[k] = v;
  }
  return out;
}

/** An entry name for messages, or a function computing it only when a message needs it. */
type Shown = string | (() => string);

function text(s: Shown): string {
  return typeof s === "string" ? s : s();
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

function lossyField(h: Uint8Array, f: HeaderField, raw = false): string {
  return utf8Lossy.decode(fieldBytes(h, f, raw));
}

function stripTrailingNuls(b: Uint8Array): Uint8Array {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.slice(0, end);
}

/**
 * Parse pax records `"%d %s=%s\n"`, strictly: the length counts the whole record, the record
 * ends with a newline, keys are UTF-8 without '=', no key twice, nothing after the last record.
 * An empty value means "unset" (null). Values stay bytes: xattr values are binary.
 */
export function parsePax(
  data: Uint8Array,
  shown: Shown,
  offset: number,
): Record<string, Uint8Array | null> {
  const out: Record<string, Uint8Array | null> = Object.create(null);
  const bad = (why: string) =>
    new TarViolation({
      rule: "pax-malformed",
      entry: text(shown),
      offset,
      message: `malformed pax header: ${why}`,
    });
  let off = 0;
  while (off < data.length) {
    let len = 0;
    let i = off;
    while (i < data.length && data[i] >= 0x30 && data[i] <= 0x39 && i - off < 16) {
      len = len * 10 + (data[i] - 0x30);
      i++;
    }
    if (i === off || data[i] !== 0x20) {
      throw bad(`record at byte ${off} does not start with a length and a space`);
    }
    if (data[off] === 0x30) throw bad(`record length at byte ${off} has a leading zero`);
    if (len <= i - off + 1 || off + len > data.length) {
      throw bad(`record length ${len} at byte ${off} does not fit`);
    }
    const rec = data.subarray(i + 1, off + len);
    if (rec[rec.length - 1] !== 0x0a) {
      throw bad(`record at byte ${off} does not end with a newline`);
    }
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad(`record at byte ${off} has no 'key='`);
    let key: string;
    try {
      key = asciiKey(rec.subarray(0, eq)) ?? utf8Strict.decode(rec.subarray(0, eq));
    } catch {
      throw bad(`key of the record at byte ${off} is not valid UTF-8`);
    }
    if (key in out) {
      // GNU sparse 0.0 repeats its offset/numbytes keys: name the real reason.
      const sparse = SPARSE_PREFIXES.some((p) => key.startsWith(p));
      throw new TarViolation({
        rule: sparse ? "sparse" : "pax-duplicate-key",
        entry: text(shown),
        offset,
        message: `pax key '${key}' appears twice`,
      });
    }
    const value = rec.subarray(eq + 1, rec.length - 1);
    out[key] = value.length === 0 ? null : value;
    off += len;
  }
  return out;
}

/** A short pure-ASCII key without a call into the runtime (most keys); undefined otherwise. */
function asciiKey(b: Uint8Array): string | undefined {
  if (b.length > 64) return undefined;
  for (let i = 0; i < b.length; i++) if (b[i] >= 0x80) return undefined;
  return String.fromCharCode.apply(null, b as unknown as number[]);
}
