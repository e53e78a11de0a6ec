/**
 * Resource limits one layer must stay within, so that a hostile blob cannot exhaust the host.
 *
 * Every limit is checked by the one reader/rule set that both validation and application use.
 * Callers override single limits; the rest keep {@linkcode DEFAULT_LIMITS}.
 *
 * @example
 * ```ts
 * import { resolveLimits } from "./limits.ts";
 * const limits = resolveLimits({ entries: 10_000 });
 * limits.fileBytes; // 8 GiB, the default
 * ```
 * @module
 */

/**
 * Per-layer limits. Sizes in bytes. Each is refused as a fatal violation (exit 65, the rule
 * named): reading stops there, since what follows cannot be trusted to stay bounded.
 *
 * Some limit what an image may be (entries, sizes); the others exist only to bound what the
 * agent spends on one layer, whatever its bytes: memory under a fixed budget (256 MiB at the
 * defaults, the budget the cost fuzzer in `tests/tar/cost/` holds every hostile family to) and
 * work in proportion to the input. Those say so below.
 */
export interface LayerLimits {
  /** Entries (files, directories, links, whiteouts) in one layer. Rule `limit-entries`. */
  entries: number;
  /**
   * Sum of regular-file sizes in one layer (hardlinks are not counted twice). Rule
   * `limit-unpacked-bytes`.
   */
  unpackedBytes: number;
  /** Size of one regular file. Rule `limit-file-bytes`. */
  fileBytes: number;
  /** Components in one path ("usr/share/doc" is 3). Rule `path-depth`. */
  pathDepth: number;
  /**
   * Size of one pax header (per-entry or global) or GNU long-name/long-link record, and of all
   * global pax records in force together. Cost: such a record is held in memory whole while
   * its entry is read (and global records until replaced), so this bounds that memory; the
   * default is far above anything real (a long path and a few xattrs are a few KiB). Rules
   * `pax-too-large`, `longname-too-large`.
   */
  paxHeaderBytes: number;
  /** Length of a symlink target. Rule `symlink-too-long`. */
  symlinkTargetBytes: number;
  /**
   * Sum over the layer's directory entries of each one's normalized path length (UTF-8 bytes)
   * plus {@linkcode DIRECTORY_ENTRY_OVERHEAD}. Cost only: the applier keeps each directory's
   * path until the end of the layer, to set directory times after their children are
   * written, so this bounds that memory. 64 MiB is ~600,000 directories of typical paths
   * (a full Debian /usr has ~10,000) and ~15,000 of the longest. Rule `limit-directory-paths`.
   */
  directoryPathBytes: number;
  /**
   * Directories the applier may create where a symlink to a missing place points (tar creates
   * parents an archive does not list; through a dangling link they are made at its target).
   * Cost only: each such directory may take up to 40 link expansions of lookups. Rule
   * `limit-linked-parents`.
   */
  linkedParents: number;
}

/**
 * The defaults: generous for real distribution layers (a full Debian /usr is about 100k
 * entries and 6 GiB), small enough that a crafted blob is refused before it hurts.
 */
export const DEFAULT_LIMITS: Readonly<LayerLimits> = Object.freeze({
  entries: 1_000_000,
  unpackedBytes: 64 * 1024 ** 3,
  fileBytes: 8 * 1024 ** 3,
  pathDepth: 128,
  paxHeaderBytes: 1024 * 1024,
  symlinkTargetBytes: 4095,
  directoryPathBytes: 64 * 1024 ** 2,
  linkedParents: 1000,
});

/**
 * What the applier spends on a directory besides its path's bytes (a map entry, a string
 * header, the time), as {@linkcode LayerLimits.directoryPathBytes} counts it.
 */
export const DIRECTORY_ENTRY_OVERHEAD = 64;

/**
 * Fixed bounds, not configurable, that bound cost. Each says what it bounds and why its value.
 */
export const COST_BOUNDS = Object.freeze({
  /**
   * Longest path or hardlink target (UTF-8 bytes), Linux's PATH_MAX: each path is held and
   * hashed whole while its entry is checked. Rule `path-too-long`.
   */
  pathBytes: 4096,
  /**
   * Compressed bytes handed to the gzip decompressor at once. Deflate expands at most ~1032:1
   * and the decompressor returns all it inflates from one input piece as one buffer, so this
   * bounds a decompressed chunk to ~17 MiB whatever the ratio (a gzip of zeros once made
   * ~1 GiB chunks, 4 GiB RSS); at 16 KiB the per-piece overhead is lost in inflating it.
   */
  inflateInputBytes: 16 * 1024,
  /**
   * Violations one validation gathers before it stops listing more: bounds the report's
   * memory and size (each names an entry and may quote a 4 KiB path).
   */
  violations: 100,
});

/** {@linkcode DEFAULT_LIMITS} with `overrides` applied; refuses non-positive or non-integer values. */
export function resolveLimits(overrides?: Partial<LayerLimits>): LayerLimits {
  const limits: LayerLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(overrides ?? {})) {
    if (!(k in DEFAULT_LIMITS)) throw new TypeError(`unknown layer limit '${k}'`);
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new TypeError(`layer limit '${k}' must be a positive integer, not ${v}`);
    }
    limits[k as keyof LayerLimits] = v;
  }
  return limits;
}
