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

/** Per-layer limits. Sizes in bytes. */
export interface LayerLimits {
  /** Entries (files, directories, links, whiteouts) in one layer. */
  entries: number;
  /** Sum of regular-file sizes in one layer (hardlinks are not counted twice). */
  unpackedBytes: number;
  /** Size of one regular file. */
  fileBytes: number;
  /** Components in one path ("usr/share/doc" is 3). */
  pathDepth: number;
  /** Size of one pax header (per-entry or global) or GNU long-name/long-link record. */
  paxHeaderBytes: number;
  /** Length of a symlink target. */
  symlinkTargetBytes: number;
  /**
   * Directories the applier may create where a symlink to a missing place points (tar creates
   * parents an archive does not list; through a dangling link they are made at its target).
   * Only bounds cost: each such directory may take up to 40 link expansions of lookups.
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
  linkedParents: 1000,
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
