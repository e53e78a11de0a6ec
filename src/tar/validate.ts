/**
 * The validation pass: read a whole layer through the strict reader and the layer rules,
 * writing nothing, and either summarize it or refuse it with every violation found.
 *
 * @example
 * ```ts
 * import { validateLayer } from "./validate.ts";
 * const summary = await validateLayer("/var/lib/thinimage/blobs/3.tar");
 * summary.entries; // 1234
 * // a hostile layer throws LayerRejectedError (exit 65) with .violations
 * ```
 * @module
 */
import { COST_BOUNDS, type LayerLimits, resolveLimits } from "./limits.ts";
import { TarReader } from "./reader.ts";
import { LayerRules, type LayerSummary, type LowerLookup } from "./rules.ts";
import { openLayerSource } from "./source.ts";
import { paced } from "./paced.ts";
import { LayerRejectedError, TarViolation, type Violation } from "./violation.ts";

export type { LayerSummary } from "./rules.ts";
export { LayerRejectedError, type Violation } from "./violation.ts";
export { DEFAULT_LIMITS, type LayerLimits } from "./limits.ts";

/** Violations gathered before validation stops listing more. */
const MAX_VIOLATIONS = COST_BOUNDS.violations;

/** Options of {@linkcode validateLayer}. */
export interface ValidateOptions {
  /** Overrides of {@linkcode DEFAULT_LIMITS}. */
  limits?: Partial<LayerLimits>;
  /** Stop early (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Also hash the blob; the summary then carries `sha256`. Reads every byte. */
  sha256?: boolean;
  /** Hardlinks may point at paths this answers for (lower layers); otherwise only earlier entries. */
  lower?: LowerLookup;
}

/**
 * Validate the layer at `path` (plain or gzip tar). Resolves to its summary; rejects with
 * {@linkcode LayerRejectedError} listing the violations, or with an `Error` when the file
 * cannot be read at all.
 */
export async function validateLayer(
  path: string,
  opts: ValidateOptions = {},
): Promise<LayerSummary & { sha256?: string }> {
  const limits = resolveLimits(opts.limits);
  const src = paced(
    await openLayerSource(path, { sha256: opts.sha256 }).catch((err) => {
      throw err instanceof TarViolation ? new LayerRejectedError(path, [err.violation]) : err;
    }),
    opts.signal,
  );
  try {
    const reader = new TarReader(src, limits);
    const rules = new LayerRules(limits, opts.lower);
    const violations: Violation[] = [];
    try {
      for (let e = await reader.next(); e; e = await reader.next()) {
        opts.signal?.throwIfAborted();
        const r = rules.check(e);
        if (!r.violations) continue;
        violations.push(...r.violations);
        if (r.fatal || violations.length >= MAX_VIOLATIONS) break;
      }
    } catch (err) {
      if (!(err instanceof TarViolation)) throw err;
      violations.push(err.violation);
    }
    if (violations.length) throw new LayerRejectedError(path, violations.slice(0, MAX_VIOLATIONS));
    return {
      compression: src.compression,
      blobBytes: src.fileBytes,
      ...rules.summary(),
      ...(opts.sha256 ? { sha256: await src.sha256() } : {}),
    };
  } finally {
    src.close();
  }
}
