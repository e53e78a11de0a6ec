/**
 * Every name this project gives or accepts, in one place: what a name a person types may be
 * (image, activation and pool names), the kernel names made from them (every device-mapper
 * device carries {@linkcode KERNEL_PREFIX}; chains and activations each have their form), the
 * device node of a name, and the image machines' names as runs record them.
 *
 * A typed name outside its pattern, or starting with `-` (it would read as an option to
 * `dmsetup`), is a usage error (exit 2) that says what is allowed.
 *
 * @example
 * ```ts
 * import { activationDeviceName, checkName, mapperPath } from "./names.ts";
 * checkName("pool", "pool", "--pool"); // "pool"
 * checkName("pool", "--help", "--pool"); // throws UsageError (exit 2)
 * mapperPath(activationDeviceName("web")); // "/dev/mapper/thinimage-act-web"
 * ```
 * @module
 */
import { InvalidInputError, UsageError } from "./errors.ts";

/** One path segment of an S3 key that is also safe inside a device name. */
const SEGMENT = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SEGMENT_SAYS = "1-63 characters of a-z 0-9 . _ -, starting with a letter or digit";
/** A device-mapper name: it goes into /dev/mapper and into dmsetup's argv, so kept plain. */
const DM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,126}$/;

/** What each kind of name may be, and how to say so. */
export const NAME_RULES = {
  /** One path segment of an S3 key, and part of device names. */
  image: { pattern: SEGMENT, says: SEGMENT_SAYS },
  /** Part of a device name under /dev/mapper. */
  activation: { pattern: SEGMENT, says: SEGMENT_SAYS },
  /** A device-mapper name, passed to dmsetup. */
  pool: {
    pattern: DM_NAME,
    says: "1-127 characters of A-Z a-z 0-9 _ . + -, starting with a letter or digit",
  },
} as const;

/** A kind of name: `image`, `activation` or `pool`. */
export type NameKind = keyof typeof NAME_RULES;

/** True when `value` is a valid `kind` name. */
export function isName(kind: NameKind, value: string): boolean {
  return NAME_RULES[kind].pattern.test(value);
}

/**
 * `value` when it is a valid `kind` name; otherwise a {@linkcode UsageError} naming `where`
 * (the flag or argument it came from) and quoting the value escaped, so control characters
 * never reach a terminal.
 */
export function checkName(kind: NameKind, value: string, where: string): string {
  if (isName(kind, value)) return value;
  const shown = JSON.stringify(value);
  const why = value.startsWith("-")
    ? `it starts with '-' (a value of ${where} cannot look like an option)`
    : value === ""
    ? "it is empty"
    : `expected ${NAME_RULES[kind].says}`;
  throw new UsageError(`invalid ${kind} name ${shown} for ${where}: ${why}`, {
    details: { kind, name: value, where },
  });
}

/**
 * `name` when it is a valid image name; otherwise an {@linkcode InvalidInputError} (exit 65:
 * the name came from data, not from the command line) that quotes it escaped.
 */
export function parseImageName(name: string): string {
  if (isName("image", name)) return name;
  throw new InvalidInputError(
    `invalid image name ${JSON.stringify(name)}: expected ${SEGMENT_SAYS}`,
    { details: { image: name } },
  );
}

/** Prefix of every kernel object name thinimage creates (pools, chains, activations). */
export const KERNEL_PREFIX = "thinimage-";

/** The pool's name when none is given. */
export const DEFAULT_POOL = `${KERNEL_PREFIX}pool`;

const HEX64 = /^[0-9a-f]{64}$/;

/** The device-mapper name of a chain's device (`sha256:HEX` or bare `HEX`). */
export function chainDeviceName(chainId: string): string {
  const hex = chainId.replace(/^sha256:/, "");
  if (!HEX64.test(hex)) throw new TypeError(`not a chain id: ${JSON.stringify(chainId)}`);
  return `${KERNEL_PREFIX}chain-${hex}`;
}

/** The device-mapper name of an activation. */
export function activationDeviceName(name: string): string {
  if (!isName("activation", name)) throw new TypeError(`not an activation name: ${name}`);
  return `${KERNEL_PREFIX}act-${name}`;
}

/** Throw unless `name` is a valid dm name carrying the project's prefix. */
export function checkDeviceName(name: string): void {
  if (!name.startsWith(KERNEL_PREFIX) || name.length === KERNEL_PREFIX.length) {
    throw new InvalidInputError(`device name '${name}' must start with '${KERNEL_PREFIX}'`);
  }
  if (!DM_NAME.test(name)) {
    throw new InvalidInputError(
      `device name '${name}' may hold only letters, digits and '_.+-' (at most 127)`,
    );
  }
}

/** The node of the device-mapper device `name`. */
export function mapperPath(name: string): string {
  return `/dev/mapper/${name}`;
}

/**
 * Each image machine's name, as runs record them (`runs.machine`): code that reads runs
 * without driving them (the answer for a live activation, gc) need not load the machines.
 */
export const MACHINE = {
  pull: "pull",
  blob: "blob",
  chain: "chain",
  activate: "activate",
  deactivate: "deactivate",
} as const;
