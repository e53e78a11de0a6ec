/**
 * Layer rules applied to each entry the reader hands over: path hygiene, entry types, OCI
 * whiteouts, hardlink targets, limits. Both validation and application call
 * {@linkcode LayerRules.check}, and application performs exactly the {@linkcode LayerOp} it
 * returns, so what was validated is what gets written.
 *
 * @example
 * ```ts
 * import { LayerRules } from "./rules.ts";
 * import { DEFAULT_LIMITS } from "./limits.ts";
 * const rules = new LayerRules(DEFAULT_LIMITS);
 * // for each entry from TarReader: const r = rules.check(entry);
 * // r.op to apply, or r.violations to report
 * rules.summary().entries; // 0
 * ```
 * @module
 */
import { COST_BOUNDS, DIRECTORY_ENTRY_OVERHEAD, type LayerLimits } from "./limits.ts";
import { HashTable, PathHasher } from "./pathhash.ts";
import type { TarEntry } from "./reader.ts";
import type { Rule, Violation } from "./violation.ts";

/** Metadata set on what an entry creates. */
export interface EntryMeta {
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/**
 * What one entry does to the target directory. `path` is relative to the image root, normalized
 * ("" is the root itself), components separated by "/".
 */
export type LayerOp =
  | { kind: "file"; path: string; size: number; meta: EntryMeta }
  | { kind: "directory"; path: string; meta: EntryMeta }
  | { kind: "symlink"; path: string; target: string; meta: EntryMeta }
  | { kind: "hardlink"; path: string; target: string }
  /** Remove what lower layers left at `path` (from `.wh.NAME`). */
  | { kind: "whiteout"; path: string }
  /** Empty directory `path` of lower-layer content (from `.wh..wh..opq`). */
  | { kind: "opaque"; path: string };

/** What a valid layer contains. */
export interface LayerSummary {
  /** Compression of the blob. */
  compression: "none" | "gzip";
  /** Size of the blob on disk. */
  blobBytes: number;
  /** Entries of every kind, whiteouts included (pax and GNU meta headers not counted). */
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** Whiteouts and opaque markers. */
  whiteouts: number;
  /** Sum of regular-file sizes. */
  unpackedBytes: number;
  /** The largest regular file, or null when there is none. */
  largestFile: { path: string; bytes: number } | null;
}

/** Result of checking one entry: an operation, or why it is refused. */
export type CheckResult = { op: LayerOp; violations?: undefined } | {
  op?: undefined;
  violations: Violation[];
  /** The violation is a limit: stop reading, the rest cannot be trusted to be bounded. */
  fatal: boolean;
};

/**
 * Answers whether a path exists in the lower layers (the target directory), for hardlinks to
 * lower-layer files. Absent: hardlinks must point at earlier entries of this layer.
 */
export type LowerLookup = (path: string) => "file" | "directory" | "missing";

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Stateful rule checker for one layer.
 *
 * Its memory does not grow with the bytes of the paths it sees: what it remembers of each path
 * (for hardlink targets) is a keyed hash (`pathhash.ts`), and each entry costs O(its own
 * bytes): no walk of everything seen before. A hash collision (~n²/2^54 for n paths) can only
 * make a hardlink target look seen when it was not, and the kernel's link(2) then refuses the
 * link when it is applied; or make a target look like a directory, or replaced since, and the
 * hardlink is refused here. Neither writes anything outside the rules.
 */
export class LayerRules {
  readonly #limits: LayerLimits;
  readonly #lower?: LowerLookup;
  readonly #hash = new PathHasher();
  /**
   * Paths this layer created -> sequence number of the entry that last set each x 2, + 1 for
   * a directory. By hash.
   */
  readonly #seen = new HashTable();
  /**
   * Paths where a non-directory replaced a directory of this layer -> sequence number of the
   * last such entry: what this layer put under it before then is gone. By hash.
   */
  readonly #replaced = new HashTable(16);
  /** Bytes the applier keeps for directory entries (path + overhead each), against the limit. */
  #directoryBytes = 0;
  readonly #s: Omit<LayerSummary, "compression" | "blobBytes"> = {
    entries: 0,
    files: 0,
    directories: 0,
    symlinks: 0,
    hardlinks: 0,
    whiteouts: 0,
    unpackedBytes: 0,
    largestFile: null,
  };

  constructor(limits: LayerLimits, lower?: LowerLookup) {
    this.#limits = limits;
    this.#lower = lower;
  }

  /** Counts so far (compression and blob size are the caller's to fill in). */
  summary(): Omit<LayerSummary, "compression" | "blobBytes"> {
    return { ...this.#s, largestFile: this.#s.largestFile ? { ...this.#s.largestFile } : null };
  }

  /**
   * Check one entry; on success, the operation it stands for. Every entry counts against the
   * entry limit and needs a clean name; then a whiteout marker is checked as one, and anything
   * else by the checker of its type.
   */
  check(e: TarEntry): CheckResult {
    const L = this.#limits;
    if (++this.#s.entries > L.entries) {
      return stop(e, "limit-entries", `more than ${L.entries} entries in one layer`);
    }
    // A device or FIFO is refused whatever its name; a bad name is reported beside it.
    const typeRefused = e.type === "char" || e.type === "block"
      ? violation(
        e,
        "device",
        `${e.type === "char" ? "character" : "block"} device entries are refused`,
      )
      : e.type === "fifo"
      ? violation(e, "fifo", "FIFO entries are refused")
      : undefined;
    const p = normalizePath(e.name, L, "name");
    if (typeof p !== "string") {
      const bad = violation(e, p.rule, p.message);
      return { violations: typeRefused ? [typeRefused, bad] : [bad], fatal: false };
    }
    if (typeRefused) return { violations: [typeRefused], fatal: false };
    // Most names hold no ".wh." at all: one search, no split, for them.
    if (p.includes(WH)) {
      const slash = p.lastIndexOf("/");
      const parent = whiteoutParent(p, slash);
      if (parent !== undefined) {
        return refuse(
          e,
          "whiteout-parent",
          `'${parent}' is a whiteout marker and cannot contain entries`,
        );
      }
      if (p.startsWith(WH, slash + 1)) {
        return this.#whiteout(e, slash < 0 ? "" : p.slice(0, slash), p.slice(slash + 1));
      }
    }
    if (p === "" && e.type !== "directory") {
      return refuse(
        e,
        "root-not-directory",
        `the image root may only be a directory, not a ${e.type}`,
      );
    }
    switch (e.type) {
      case "file":
        return this.#file(e, p);
      case "directory":
        return this.#directory(e, p);
      case "symlink":
        return this.#symlink(e, p);
      case "hardlink":
        return this.#hardlink(e, p);
      default:
        return refuse(e, "unknown-type", `entry type ${e.type} is refused`);
    }
  }

  /**
   * A whiteout (`.wh.NAME` in `dir`: remove what lower layers left at NAME) or an opaque marker
   * (`.wh..wh..opq`: empty `dir` of lower-layer content). Either is an empty regular file.
   */
  #whiteout(e: TarEntry, dir: string, base: string): CheckResult {
    this.#s.whiteouts++;
    if (e.type === "hardlink" || e.type === "symlink" || e.type === "directory") {
      return refuse(
        e,
        "whiteout-type",
        `a whiteout must be an empty regular file, not a ${e.type}`,
      );
    }
    if (base === OPAQUE) return { op: { kind: "opaque", path: dir } };
    const name = base.slice(WH.length);
    if (name.startsWith(WH)) {
      return refuse(e, "whiteout-reserved", `'${base}' is a reserved whiteout name`);
    }
    if (name === "" || name === "." || name === "..") {
      return refuse(
        e,
        "whiteout-dot",
        `whiteout '${base}' names ${name === "" ? "nothing" : `'${name}'`}`,
      );
    }
    return { op: { kind: "whiteout", path: dir === "" ? name : `${dir}/${name}` } };
  }

  /** A regular file: within the size limits, one file and the layer's total. */
  #file(e: TarEntry, p: string): CheckResult {
    const L = this.#limits;
    if (e.size > L.fileBytes) {
      return stop(
        e,
        "limit-file-bytes",
        `file of ${e.size} bytes exceeds the limit of ${L.fileBytes}`,
      );
    }
    this.#s.unpackedBytes += e.size;
    if (this.#s.unpackedBytes > L.unpackedBytes) {
      return stop(e, "limit-unpacked-bytes", `layer unpacks to more than ${L.unpackedBytes} bytes`);
    }
    this.#s.files++;
    if (!this.#s.largestFile || e.size > this.#s.largestFile.bytes) {
      this.#s.largestFile = { path: p, bytes: e.size };
    }
    this.#see(p, false);
    return { op: { kind: "file", path: p, size: e.size, meta: metaOf(e) } };
  }

  /** A directory: the applier keeps each one's path until the end, to set its time last. */
  #directory(e: TarEntry, p: string): CheckResult {
    const L = this.#limits;
    this.#directoryBytes += byteLength(p) + DIRECTORY_ENTRY_OVERHEAD;
    if (this.#directoryBytes > L.directoryPathBytes) {
      return stop(
        e,
        "limit-directory-paths",
        `the layer's directory paths add up to more than ${L.directoryPathBytes} bytes`,
      );
    }
    this.#s.directories++;
    this.#see(p, true);
    return { op: { kind: "directory", path: p, meta: metaOf(e) } };
  }

  /** A symlink: a target that is not empty, not too long, UTF-8 without NUL. Never followed. */
  #symlink(e: TarEntry, p: string): CheckResult {
    const raw = e.linkname;
    const limit = this.#limits.symlinkTargetBytes;
    if (raw.length === 0) return refuse(e, "symlink-empty", "symlink with an empty target");
    if (raw.length > limit) {
      return refuse(
        e,
        "symlink-too-long",
        `symlink target of ${raw.length} bytes exceeds the limit of ${limit}`,
      );
    }
    if (raw.includes(0)) return refuse(e, "link-nul", "symlink target contains a NUL byte");
    let target: string;
    try {
      target = ascii(raw) ?? utf8.decode(raw);
    } catch {
      return refuse(e, "link-utf8", "symlink target is not valid UTF-8");
    }
    this.#s.symlinks++;
    this.#see(p, false);
    return { op: { kind: "symlink", path: p, target, meta: metaOf(e) } };
  }

  /**
   * A hardlink: to a non-directory inside the image, made earlier in this layer and still
   * there, or found in the lower layers.
   */
  #hardlink(e: TarEntry, p: string): CheckResult {
    const raw = e.linkname;
    if (raw[0] === 0x2f) {
      return refuse(e, "hardlink-outside", "hardlink target is an absolute path outside the image");
    }
    const t = normalizePath(raw, this.#limits, "hardlink target");
    if (typeof t !== "string") {
      return refuse(e, t.rule === "name-dotdot" ? "hardlink-outside" : t.rule, t.message);
    }
    if (t === "" || t === p) {
      return refuse(
        e,
        "hardlink-unknown-target",
        `hardlink to ${t === "" ? "the image root" : "itself"}`,
      );
    }
    const kind = this.#seenKind(t) ?? this.#lower?.(t) ?? "missing";
    if (kind === "missing") {
      const lower = this.#lower ? " and is not in the lower layers" : "";
      return refuse(
        e,
        "hardlink-unknown-target",
        `hardlink target '${t}' was not seen before in this layer${lower}`,
      );
    }
    if (kind === "directory") {
      return refuse(e, "hardlink-to-directory", `hardlink target '${t}' is a directory`);
    }
    this.#s.hardlinks++;
    this.#see(p, false);
    return { op: { kind: "hardlink", path: p, target: t } };
  }

  /** Remember that entry number `entries` made `p`. O(length of p). */
  #see(p: string, isDir: boolean): void {
    const seq = this.#s.entries;
    const h = this.#hash.hash(p);
    // A non-directory replaces a directory and everything this layer put under it: noted
    // here, checked against each hardlink target's ancestors (no walk of what was under it).
    if (!isDir && (this.#seen.get(h) ?? 0) % 2 === 1) this.#replaced.set(h, seq);
    this.#seen.set(h, seq * 2 + (isDir ? 1 : 0));
  }

  /**
   * What this layer left at `t` so far: undefined when it made nothing there, or when a
   * non-directory replaced one of its ancestors after it was made. O(length of t).
   */
  #seenKind(t: string): "file" | "directory" | undefined {
    const v = this.#seen.get(this.#hash.hash(t));
    if (v === undefined) return undefined;
    const made = Math.floor(v / 2);
    if (this.#replaced.size > 0) {
      const gone = this.#hash.prefixes(t, (q) => (this.#replaced.get(q) ?? -1) > made);
      if (gone) return undefined;
    }
    return v % 2 === 1 ? "directory" : "file";
  }
}

/**
 * The first component of `p` before its last (at `slash`) that is a whiteout marker, if any: a
 * marker names something to remove and cannot contain entries.
 */
function whiteoutParent(p: string, slash: number): string | undefined {
  if (slash < 0) return undefined;
  if (p.startsWith(WH)) return p.slice(0, p.indexOf("/"));
  const at = p.indexOf("/" + WH);
  if (at < 0 || at >= slash) return undefined;
  return p.slice(at + 1, p.indexOf("/", at + 1));
}

/** The metadata an entry sets on what it creates. */
function metaOf(e: TarEntry): EntryMeta {
  return { mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
}

function violation(e: TarEntry, rule: Rule, message: string): Violation {
  return { rule, entry: e.displayName, message, offset: e.offset };
}

/** The entry is refused; later entries are still checked, to list every violation. */
function refuse(e: TarEntry, rule: Rule, message: string): CheckResult {
  return { violations: [violation(e, rule, message)], fatal: false };
}

/** A limit is broken: stop reading, what follows cannot be trusted to be bounded. */
function stop(e: TarEntry, rule: Rule, message: string): CheckResult {
  return { violations: [violation(e, rule, message)], fatal: true };
}

/**
 * Normalize an entry name: strict UTF-8, no NUL, relative, no `..`; a leading `./` and `.`
 * components and repeated or trailing slashes are dropped ("./" alone is the root, "").
 * Returns the path, or the rule it breaks.
 */
export function normalizePath(
  raw: Uint8Array,
  limits: Pick<LayerLimits, "pathDepth">,
  what = "name",
): string | { rule: Rule; message: string } {
  const n = raw.length;
  if (n === 0) return { rule: "name-empty", message: `empty ${what}` };
  // One pass over the bytes finds what the checks below need: '/' and '.' never occur inside a
  // multi-byte UTF-8 sequence, so components can be told apart before decoding.
  let nul = false;
  let ascii = true;
  let normal = true;
  let longest = 0;
  let depth = 1;
  let compStart = 0;
  for (let i = 0; i <= n; i++) {
    const b = i < n ? raw[i] : 0x2f;
    if (b === 0x2f) {
      const len = i - compStart;
      if (
        len === 0 || (raw[compStart] === 0x2e && (len === 1 || (len === 2 && raw[i - 1] === 0x2e)))
      ) normal = false;
      else if (len > longest) longest = len;
      if (i < n) depth++;
      compStart = i + 1;
    } else if (b >= 0x80) ascii = false;
    else if (b === 0) nul = true;
  }
  if (nul) return { rule: "name-nul", message: `${what} contains a NUL byte` };
  if (n > COST_BOUNDS.pathBytes) {
    return {
      rule: "path-too-long",
      message: `${what} of ${n} bytes is longer than ${COST_BOUNDS.pathBytes}`,
    };
  }
  let s: string;
  try {
    s = (ascii ? asciiString(raw) : undefined) ?? utf8.decode(raw);
  } catch {
    return { rule: "name-utf8", message: `${what} is not valid UTF-8` };
  }
  if (raw[0] === 0x2f) return { rule: "name-absolute", message: `${what} is an absolute path` };
  if (normal) {
    // Already "a/b/c" (the common case): only lengths and depth to check.
    if (longest > 255) {
      return {
        rule: "component-too-long",
        message: `a component of ${what} is longer than 255 bytes`,
      };
    }
    if (depth > limits.pathDepth) {
      return {
        rule: "path-depth",
        message: `${what} has ${depth} components, more than the limit of ${limits.pathDepth}`,
      };
    }
    return s;
  }
  const out: string[] = [];
  for (const c of s.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") return { rule: "name-dotdot", message: `${what} has a '..' component` };
    if (byteLength(c) > 255) {
      return {
        rule: "component-too-long",
        message: `a component of ${what} is longer than 255 bytes`,
      };
    }
    out.push(c);
  }
  if (out.length > limits.pathDepth) {
    return {
      rule: "path-depth",
      message: `${what} has ${out.length} components, more than the limit of ${limits.pathDepth}`,
    };
  }
  return out.join("/");
}

/** Decode pure-ASCII bytes without a call into the runtime; undefined when not ASCII. */
function ascii(b: Uint8Array): string | undefined {
  for (let i = 0; i < b.length; i++) if (b[i] >= 0x80) return undefined;
  return asciiString(b);
}

/** Bytes known to be ASCII as a string; undefined past 256 (an argument list that long is dear). */
function asciiString(b: Uint8Array): string | undefined {
  return b.length > 256 ? undefined : String.fromCharCode.apply(null, b as unknown as number[]);
}

function byteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
