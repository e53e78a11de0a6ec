/**
 * Pax extended headers (POSIX.1-2001 `x` and `g` entries): their records parsed strictly, the
 * keys sorted into honoured (they set entry fields), ignored on purpose, and refused; and the
 * global records in force across entries, bounded in total.
 *
 * Everything here is pure: a refusal is thrown as a `Refusal` (a rule and a sentence), and the
 * reader adds the entry and the offset it concerns.
 *
 * @example
 * ```ts
 * import { decodePax, parsePax } from "./pax.ts";
 * const data = new TextEncoder().encode("16 path=a/b/c.t\n");
 * decodePax(parsePax(data), false); // { path: "a/b/c.t" }
 * ```
 * @module
 */
import { Refusal } from "./violation.ts";

/** The values of honoured pax keys in force for one entry: all an entry takes from pax. */
export interface Honoured {
  path?: string;
  linkpath?: string;
  size?: string;
  uid?: string;
  gid?: string;
  uname?: string;
  gname?: string;
  mtime?: string;
}

/** Raw records of one pax header: key -> value bytes, or null for an empty value ("unset"). */
export type PaxRecords = Record<string, Uint8Array | null>;
/** Records of one pax header once checked: honoured values decoded, others kept as text. */
export type PaxValues = Record<string, string | null>;

/**
 * Pax keys whose values are decoded strictly. All but the user and group names set entry fields:
 * owners are set by number, and the names are only checked.
 */
const HONOURED_KEYS = [
  "path",
  "linkpath",
  "size",
  "uid",
  "gid",
  "uname",
  "gname",
  "mtime",
] as const satisfies readonly (keyof Honoured)[];
const HONOURED = new Set<string>(HONOURED_KEYS);
/** Honoured keys a global header may set (`path`, `linkpath` and `size` are refused there). */
const GLOBAL_HONOURED = ["uid", "gid", "uname", "gname", "mtime"] as const;
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
export const NO_PAX: Honoured = Object.freeze({});

const utf8Lossy = new TextDecoder("utf-8");
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Parse pax records `"%d %s=%s\n"`, strictly: the length counts the whole record, the record
 * ends with a newline, keys are UTF-8 without '=', no key twice, nothing after the last record.
 * An empty value means "unset" (null). Values stay bytes: xattr values are binary.
 */
export function parsePax(data: Uint8Array): PaxRecords {
  const out: PaxRecords = Object.create(null);
  const bad = (why: string) => new Refusal("pax-malformed", `malformed pax header: ${why}`);
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
      throw new Refusal(sparse ? "sparse" : "pax-duplicate-key", `pax key '${key}' appears twice`);
    }
    const value = rec.subarray(eq + 1, rec.length - 1);
    out[key] = value.length === 0 ? null : value;
    off += len;
  }
  return out;
}

/**
 * Refuse what must be refused (sparse and multi-volume keys, unknown keys, and in a global
 * header keys that would give every entry one name or size); decode honoured values strictly
 * and keep the rest as text, only for the limit on global records in force.
 */
export function decodePax(records: PaxRecords, global: boolean): PaxValues {
  const out: PaxValues = {};
  for (const [key, raw] of Object.entries(records)) {
    if (SPARSE_PREFIXES.some((p) => key.startsWith(p))) {
      throw new Refusal(
        "sparse",
        `pax key '${key}' describes a sparse file; sparse files are refused`,
      );
    }
    if (key.startsWith("GNU.volume.")) {
      throw new Refusal("volume", `pax key '${key}' belongs to a multi-volume archive`);
    }
    if (global && (key === "path" || key === "linkpath" || key === "size")) {
      throw new Refusal(
        "pax-global-key",
        `a global pax header may not set '${key}' for every entry`,
      );
    }
    if (HONOURED.has(key)) {
      out[key] = raw === null ? null : honouredValue(key, raw);
      continue;
    }
    if (!IGNORED_KEYS.has(key) && !IGNORED_PREFIXES.some((p) => key.startsWith(p))) {
      throw new Refusal("pax-unknown-key", `unknown pax key '${key}'`);
    }
    // An ignored value sets nothing; a global one is decoded only for its share of the limit
    // on global records in force.
    out[key] = raw === null ? null : global ? utf8Lossy.decode(raw.subarray(0, 256)) : "";
  }
  return out;
}

function honouredValue(key: string, raw: Uint8Array): string {
  if (raw.includes(0)) throw new Refusal("name-nul", `pax '${key}' contains a NUL byte`);
  try {
    return utf8Strict.decode(raw);
  } catch {
    throw new Refusal("name-utf8", `pax '${key}' is not valid UTF-8`);
  }
}

/**
 * The global pax records in force. An entry takes only honoured values from them, so only those
 * are kept as values (a handful of keys: an entry costs O(1) whatever the global headers hold);
 * every other key in force is kept as its size, for the limit on their total.
 */
export class GlobalPax {
  readonly #limit: number;
  #honoured: Honoured = {};
  #any = false;
  /** Key -> key length + value length, of every global record in force; and their sum. */
  readonly #sizes = new Map<string, number>();
  #bytes = 0;

  /** `limit`: the largest total of key and value lengths in force at once. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Put a global header's records in force (an empty value unsets its key). */
  apply(records: PaxValues): void {
    // O(records of this header): a later tiny global header does not revisit the records an
    // earlier one left in force.
    for (const [k, v] of Object.entries(records)) {
      this.#bytes -= this.#sizes.get(k) ?? 0;
      if (v === null) this.#sizes.delete(k);
      else {
        this.#sizes.set(k, k.length + v.length);
        this.#bytes += k.length + v.length;
      }
    }
    for (const k of GLOBAL_HONOURED) {
      if (!(k in records)) continue;
      const v = records[k];
      if (v === null) delete this.#honoured[k];
      else this.#honoured[k] = v;
    }
    this.#any = GLOBAL_HONOURED.some((k) => this.#honoured[k] !== undefined);
    // Many global headers, each within the limit, must not add up to an unbounded set.
    if (this.#bytes > this.#limit) {
      throw new Refusal(
        "pax-too-large",
        `global pax records in force add up to more than ${this.#limit} bytes`,
      );
    }
  }

  /**
   * The honoured values in force for an entry: its own records (null when it has no pax header)
   * over the global ones, where an empty value of its own unsets the key. O(honoured keys).
   */
  forEntry(own: PaxValues | null): Honoured {
    if (own === null) return this.#any ? this.#honoured : NO_PAX;
    const out: Honoured = {};
    for (const k of HONOURED_KEYS) {
      const v = Object.hasOwn(own, k) ? own[k] : this.#honoured[k];
      if (v !== null && v !== undefined) out[k] = v;
    }
    return out;
  }
}

/** A pax uid or gid (whole) or mtime (may be negative and fractional), strictly. */
export function paxNumber(value: string, key: "uid" | "gid" | "mtime"): number {
  const ok = key === "mtime" ? /^-?\d{1,15}(\.\d{1,9})?$/.test(value) : /^\d{1,15}$/.test(value);
  if (!ok) {
    throw new Refusal(
      "field-unparseable",
      `pax ${key} ${JSON.stringify(value.slice(0, 40))} is not a valid number`,
    );
  }
  return Number(value);
}

/** A pax size: decimal digits only, a safe integer. */
export function paxSize(value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new Refusal(
      value.startsWith("-") ? "size-negative" : "size-unparseable",
      `pax size ${JSON.stringify(value.slice(0, 40))} is not a valid size`,
    );
  }
  const size = Number(value);
  if (!Number.isSafeInteger(size)) throw new Refusal("size-overflow", "pax size overflows");
  return size;
}

/** A short pure-ASCII key without a call into the runtime (most keys); undefined otherwise. */
function asciiKey(b: Uint8Array): string | undefined {
  if (b.length > 64) return undefined;
  for (let i = 0; i < b.length; i++) if (b[i] >= 0x80) return undefined;
  return String.fromCharCode.apply(null, b as unknown as number[]);
}
