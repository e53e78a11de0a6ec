/**
 * The one check for every name a person types that reaches a device name, a path or a
 * tool's argv: image names (`IMAGE`), activation names (`--name`, `deactivate NAME`) and pool
 * names (`--pool`, `pool init --name`). A name outside its pattern, or starting with `-` (it
 * would read as an option to `dmsetup`), is a usage error (exit 2) that says what is allowed.
 *
 * @example
 * ```ts
 * import { checkName } from "./names.ts";
 * checkName("pool", "pool", "--pool"); // "pool"
 * checkName("pool", "--help", "--pool"); // throws UsageError (exit 2)
 * ```
 * @module
 */
import { UsageError } from "./errors.ts";

/** What each kind of name may be, and how to say so. */
export const NAME_RULES = {
  /** One path segment of an S3 key, and part of device names. */
  image: {
    pattern: /^[a-z0-9][a-z0-9._-]{0,62}$/,
    says: "1-63 characters of a-z 0-9 . _ -, starting with a letter or digit",
  },
  /** Part of a device name under /dev/mapper. */
  activation: {
    pattern: /^[a-z0-9][a-z0-9._-]{0,62}$/,
    says: "1-63 characters of a-z 0-9 . _ -, starting with a letter or digit",
  },
  /** A device-mapper name, passed to dmsetup. */
  pool: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,126}$/,
    says: "1-127 characters of A-Z a-z 0-9 _ . + -, starting with a letter or digit",
  },
} as const;

/** A kind of name: `image`, `activation` or `pool`. */
export type NameKind = keyof typeof NAME_RULES;

/**
 * `value` when it is a valid `kind` name; otherwise a {@linkcode UsageError} naming `where`
 * (the flag or argument it came from) and quoting the value escaped, so control characters
 * never reach a terminal.
 */
export function checkName(kind: NameKind, value: string, where: string): string {
  const rule = NAME_RULES[kind];
  if (rule.pattern.test(value)) return value;
  const shown = JSON.stringify(value);
  const why = value.startsWith("-")
    ? `it starts with '-' (a value of ${where} cannot look like an option)`
    : value === ""
    ? "it is empty"
    : `expected ${rule.says}`;
  throw new UsageError(`invalid ${kind} name ${shown} for ${where}: ${why}`, {
    details: { kind, name: value, where },
  });
}
