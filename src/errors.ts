/**
 * Errors that cross module boundaries, and the sysexits-style exit code each one maps to.
 *
 * Every module throws one of these (or a subclass) for failures a caller may act on; the CLI
 * turns them into an exit code and a one-line message. Cron reads the code, a person the line.
 *
 * @example
 * ```ts
 * import { InvalidInputError, exitCodeOf } from "./errors.ts";
 * const err = new InvalidInputError("layer 3.tar: entry '../etc/passwd' climbs out of the image");
 * exitCodeOf(err); // 65
 * ```
 * @module
 */

/** Exit codes every command keeps (see README.md, "Exit codes"). */
export const ExitCode = {
  /** Done. */
  Ok: 0,
  /** Anything not covered below: a bug, or a failure of this host. */
  Failure: 1,
  /** The command line is wrong. */
  Usage: 2,
  /** Invalid or hostile input: a bad image name, key, blob or tar entry. */
  DataErr: 65,
  /** The source (S3) cannot be reached or does not have what was asked for. */
  Unavailable: 69,
  /** Temporary: a busy lock, a cancelled run, too little free space. Retry later. */
  TempFail: 75,
} as const;

/** One of {@linkcode ExitCode}'s values. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** What every {@linkcode ThinimageError} may be given besides its message. */
export interface ErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
  /** Overrides the class's {@linkcode ThinimageError.permanent}. */
  permanent?: boolean;
}

/** Base class: an error with an exit code and, optionally, structured details for `--json`. */
export class ThinimageError extends Error {
  /** The process exit code this error maps to. */
  readonly exitCode: ExitCode = ExitCode.Failure;
  /** Machine-readable details, printed under `error.details` with `--json`. */
  readonly details?: Record<string, unknown>;
  /** The class's answer for {@linkcode ThinimageError.permanent}: false, retried. */
  protected readonly permanentByDefault: boolean = false;
  readonly #permanent?: boolean;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.details = options?.details;
    this.#permanent = options?.permanent;
  }

  /**
   * True when running the failed step again within the same run cannot help, so the run halts
   * at once: the one retry decision, read by the engine and the image machines alike. False
   * (retried with backoff) for unclassified failures; each class below says why it is, or not.
   */
  get permanent(): boolean {
    return this.#permanent ?? this.permanentByDefault;
  }
}

/** The command line is wrong (exit 2). Permanent: the same arguments fail the same way. */
export class UsageError extends ThinimageError {
  override readonly exitCode = ExitCode.Usage;
  protected override readonly permanentByDefault = true;
}

/** Invalid or hostile input (exit 65). Permanent: the same bytes fail the same way. */
export class InvalidInputError extends ThinimageError {
  override readonly exitCode = ExitCode.DataErr;
  protected override readonly permanentByDefault = true;
}

/**
 * The source cannot be reached or refuses (exit 69). Permanent within a run: the S3 client
 * and the downloads have already retried what was worth retrying.
 */
export class SourceUnavailableError extends ThinimageError {
  override readonly exitCode = ExitCode.Unavailable;
  protected override readonly permanentByDefault = true;
}

/**
 * The source answered and does not have it: an image with nothing under its prefix (exit 69,
 * as any object missing from the source). Unlike an unreachable source, a local copy does not
 * stand in for it: the image is gone from where it is pulled.
 */
export class NotInSourceError extends SourceUnavailableError {}

/**
 * Temporary: another process holds it, the run was cancelled, or the pool is short of space;
 * safe to retry later (exit 75). Permanent within a run: what it waits for is not this run's
 * to change, so the command ends and its caller (cron) tries again.
 */
export class TemporaryError extends ThinimageError {
  override readonly exitCode = ExitCode.TempFail;
  protected override readonly permanentByDefault = true;
}

/**
 * Something on the host that is not this project's holds what it needs, such as a live device
 * under one of its device names (exit 1). Permanent: waiting does not remove it.
 */
export class ConflictError extends ThinimageError {
  protected override readonly permanentByDefault = true;
}

/** A Deno permission the command needs was not granted (exit 1, with the flag to add). */
export class MissingPermissionError extends ThinimageError {
  constructor(readonly flag: string, cause?: unknown) {
    super(`missing permission: run with ${flag}`, { cause, details: { flag } });
  }
}

/** The exit code for any thrown value. */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof ThinimageError) return err.exitCode;
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    return ExitCode.Failure;
  }
  return ExitCode.Failure;
}

/** A message for any thrown value, following `cause` chains so the root reason is visible. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const text = cur instanceof Error ? cur.message : String(cur);
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}
