/**
 * How a refused layer is reported: one {@linkcode Violation} per broken rule, gathered into a
 * {@linkcode LayerRejectedError} (exit 65) whose `details.violations` `--json` prints.
 *
 * @example
 * ```ts
 * import { LayerRejectedError } from "./violation.ts";
 * const err = new LayerRejectedError("3.tar", [
 *   { rule: "name-dotdot", entry: "../etc/passwd", message: "path has a '..' component" },
 * ]);
 * err.exitCode; // 65
 * ```
 * @module
 */
import { InvalidInputError } from "../errors.ts";

/** The name of a broken rule: stable and kebab-case, for scripts reading `--json`. */
export type Rule =
  // The blob and the tar format, refused by the source and the reader (`source.ts`, `reader.ts`).
  | "compression-unsupported"
  | "gzip-corrupt"
  | "truncated"
  | "zero-block"
  | "trailing-data"
  | "header-checksum"
  | "header-format"
  | "size-unparseable"
  | "size-overflow"
  | "size-negative"
  | "size-unexpected"
  | "field-unparseable"
  | "owner-range"
  | "mtime-range"
  | "unknown-type"
  | "sparse"
  | "volume"
  // Pax and GNU meta headers (`pax.ts`, `reader.ts`).
  | "meta-dangling"
  | "meta-repeated"
  | "pax-malformed"
  | "pax-duplicate-key"
  | "pax-unknown-key"
  | "pax-global-key"
  | "pax-too-large"
  | "longname-too-large"
  // Names and link targets (`rules.ts`).
  | "name-empty"
  | "name-nul"
  | "name-utf8"
  | "name-absolute"
  | "name-dotdot"
  | "path-too-long"
  | "path-depth"
  | "component-too-long"
  | "root-not-directory"
  | "device"
  | "fifo"
  | "symlink-empty"
  | "symlink-too-long"
  | "link-nul"
  | "link-utf8"
  | "hardlink-outside"
  | "hardlink-unknown-target"
  | "hardlink-to-directory"
  // OCI whiteouts (`rules.ts`).
  | "whiteout-parent"
  | "whiteout-type"
  | "whiteout-reserved"
  | "whiteout-dot"
  // Layer limits (`limits.ts`, checked in `rules.ts`; linked parents by the applier).
  | "limit-entries"
  | "limit-file-bytes"
  | "limit-unpacked-bytes"
  | "limit-directory-paths"
  | "limit-linked-parents"
  // What the kernel or the blob says while a layer is applied (`apply.ts`).
  | "sha256-mismatch"
  | "blob-changed"
  | "too-many-links"
  | "symlink-loop"
  | "parent-not-directory"
  | "parent-missing"
  | "too-large-for-target";

/** One broken rule. */
export interface Violation {
  rule: Rule;
  /** The entry's name as the archive spells it (lossily decoded), or `""` for the archive itself. */
  entry: string;
  /** One sentence for a person. */
  message: string;
  /** Byte offset of the entry's header in the (decompressed) tar stream, when known. */
  offset?: number;
}

/** A layer was refused. Never retried: the same bytes fail the same way. */
export class LayerRejectedError extends InvalidInputError {
  /** Every violation found (validation stops early at format errors and after 100). */
  readonly violations: readonly Violation[];

  constructor(file: string, violations: readonly Violation[]) {
    const first = violations.slice(0, 3).map(formatViolation).join("; ");
    const more = violations.length > 3 ? `; and ${violations.length - 3} more` : "";
    super(`layer ${file} refused: ${first}${more}`, {
      details: { file, violations: violations.map((v) => ({ ...v })) },
    });
    this.violations = violations;
  }
}

/** `rule 'entry': message`, the form used in one-line errors. */
export function formatViolation(v: Violation): string {
  return v.entry === "" ? `${v.rule}: ${v.message}` : `${v.rule} '${v.entry}': ${v.message}`;
}

/**
 * Thrown inside the reader for a violation that stops reading (the stream cannot be trusted
 * past it). Internal: the validator turns it into a {@linkcode LayerRejectedError}.
 */
export class TarViolation extends Error {
  constructor(readonly violation: Violation) {
    super(formatViolation(violation));
  }
}

/**
 * A rule broken, found by code that does not know which entry or offset it concerns (pax
 * records, field values); the reader turns it into a {@linkcode TarViolation}.
 */
export class Refusal extends Error {
  constructor(readonly rule: Rule, message: string) {
    super(message);
  }
}
