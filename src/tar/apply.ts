/**
 * Apply a layer onto a directory (a mounted thin snapshot, or any directory for debugging):
 * read the blob through the reader and rules (hashing it when its digest is expected or asked
 * for) and perform each entry's operation through {@linkcode TargetDir}, where the kernel
 * resolves every path inside the directory. A refused blob leaves the directory as it was: one
 * that held something is validated whole first (nothing written on refusal); one that held
 * nothing takes a plain blob that fits in one pass (anything else is validated first) and is
 * emptied again on refusal. OCI semantics: later entries replace earlier ones, whiteouts and
 * opaque markers remove only what lower layers left and are never created themselves.
 *
 * Writes are synchronous system calls through libc (Deno's own file ops cost twice as much per
 * file) and not fsynced: the caller syncs the filesystem once afterwards. Needs `--allow-ffi`
 * for libc only; no Deno write permission is used for the target.
 *
 * @example
 * ```ts
 * import { applyLayer } from "./apply.ts";
 * const r = await applyLayer("blobs/3.tar", "/mnt/thinimage-3", { expectedSha256: "ab12..." });
 * r.files; // 1234
 * r.sha256; // "ab12..."
 * ```
 * @module
 */
import { InvalidInputError, MissingPermissionError, ThinimageError } from "../errors.ts";
import { LIBC_PATH, SyscallError } from "../host/libc.ts";
import { type LayerLimits, resolveLimits } from "./limits.ts";
import { TarReader } from "./reader.ts";
import { type LayerOp, LayerRules, type LayerSummary, type LowerLookup } from "./rules.ts";
import { openLayerSource } from "./source.ts";
import { FileWriteError, FileWriter } from "./file_writer.ts";
import { fileIdentity } from "../host/file_identity.ts";
import { hashInBackground } from "./background_hash.ts";
import { paced } from "./paced.ts";
import { LinkedParentsError, TargetDir } from "./target.ts";
import {
  formatViolation,
  LayerRejectedError,
  type Rule,
  TarViolation,
  type Violation,
} from "./violation.ts";
import { validateLayer } from "./validate.ts";
import { isGzip } from "./magic.ts";

/**
 * Blobs smaller than this are applied and hashed on one thread: starting a worker (an isolate,
 * its modules) costs about what applying this many bytes does, many times more under emulation.
 */
const WORKER_MIN_BYTES = 16 << 20;

/** Options of {@linkcode applyLayer}. */
export interface ApplyOptions {
  /** Refuse the blob unless its SHA-256 is this (hex). */
  expectedSha256?: string;
  /**
   * Compute and report the blob's SHA-256 even with no `expectedSha256` to hold it to. Off by
   * default: hashing costs about a third of what unpacking does in CPU time, on a second core,
   * and a caller that verifies nothing has no use for the digest.
   */
  digest?: boolean;
  /**
   * The blob already passed `validateLayer` and `expectedSha256` is the digest it had then:
   * skip the validation pass and apply in one pass. Every rule still runs on every entry
   * through the same reader, and the digest is still checked as the blob is read, so a
   * hostile or swapped blob is still refused, but only after part of it was written: for a
   * target the caller discards on failure (a fresh snapshot), never for one it keeps.
   */
  validated?: boolean;
  /**
   * With `validated`: the identity ({@linkcode fileIdentity}) the blob had when its digest was
   * verified. While the file still has it, before and after, it holds those bytes, and the
   * pass does not hash it again (any write moves the change time; a swap, the inode).
   */
  verifiedIdentity?: string;
  /**
   * With `validated`: how many whiteouts and opaque markers validation counted. When none, the
   * applier skips what only they need (a stat per object created).
   */
  whiteouts?: number;
  /**
   * The target is a fresh snapshot with nothing mounted inside: a lookup that would cross
   * into another filesystem is refused (RESOLVE_NO_XDEV). Off for `thinimage apply DIR`.
   */
  noCrossMounts?: boolean;
  /** Overrides of the default limits. */
  limits?: Partial<LayerLimits>;
  /** Stop at the next entry (rejects with the signal's reason; what was written stays). */
  signal?: AbortSignal;
  /** Called as the blob is applied, with blob bytes read so far and the blob's size. */
  onProgress?: (bytesApplied: number, total: number) => void;
  /**
   * Called once file data written reaches `checkpointBytes` (initially), then again after the
   * number of bytes each call returns: the caller checks the space left where the writes land
   * (a thin pool) and throws to stop. Bytes are file data, not blocks.
   */
  checkpoint?: (bytesWritten: number) => Promise<number>;
  /** File bytes written before the first `checkpoint` call. */
  checkpointBytes?: number;
}

/**
 * Apply `path` onto `dir`. Resolves to the layer summary and, when it was expected or asked
 * for ({@linkcode ApplyOptions.digest}), the blob's SHA-256. Rejects with
 * {@linkcode LayerRejectedError} (exit 65) when the blob breaks a rule, differs from
 * `expectedSha256` (rule `sha256-mismatch`), changes while it is read (`blob-changed`), or asks
 * for what the kernel refuses (too many links, a path too long, a loop, no space left). Onto an
 * empty `dir`, what was written is then removed and `dir` gets back its owner, mode and mtime.
 * Onto any other, a blob that breaks a rule or holds more than the free space is refused before
 * anything is written; the other refusals come after writing, and the partial layer is the
 * caller's to discard. With `validated`, there is one pass and any refusal comes after a
 * partial write, naming the rule the entry broke; nothing is removed. Every entry written passed
 * the rules either way, and the kernel keeps every write inside `dir`.
 */
export async function applyLayer(
  path: string,
  dir: string,
  opts: ApplyOptions = {},
): Promise<Applied> {
  const expected = opts.expectedSha256?.toLowerCase();
  if (opts.validated && expected === undefined) {
    // Without a digest to hold it to, one pass could not tell a swapped blob from the one
    // that was validated.
    throw new TypeError("applyLayer: `validated` needs `expectedSha256`");
  }
  if (Deno.realPathSync(dir) === "/") throw new ThinimageError("refusing to apply a layer onto /");
  if (!Deno.statSync(dir).isDirectory) {
    throw new Deno.errors.NotADirectory(`${dir} is not a directory`); // the caller's mistake
  }
  if (Deno.permissions.querySync({ name: "ffi", path: LIBC_PATH }).state !== "granted") {
    // Before reading anything, rather than half-way through.
    throw new MissingPermissionError(`--allow-ffi=${LIBC_PATH}`);
  }
  const stat = Deno.statSync(path);
  const identity = fileIdentity(stat);
  const blob = { size: stat.size, gzip: gzipFile(path) };
  const base = resolveLimits(opts.limits);
  const open = (trackCreated: boolean) =>
    TargetDir.open(dir, {
      noCrossMounts: opts.noCrossMounts,
      trackCreated,
      linkedParents: base.linkedParents,
    });
  // Started first, before the digest's thread: the pass waits for this one to run (its start
  // takes tens of milliseconds, and creating a worker holds this thread for about ten).
  const writer = blob.size < WORKER_MIN_BYTES || blob.gzip ? undefined : FileWriter.start(path);
  try {
    // The digest is computed on the other core from the same file, from now on (the validation
    // pass leaves that core idle); the identity it saw, still the file's at the end, says it
    // hashed the bytes the passes parsed. A blob that still has the identity it had when its
    // digest was verified is not hashed again.
    const verified = opts.validated && expected !== undefined &&
      opts.verifiedIdentity === identity;
    const hashing: Hashing = verified
      ? known({ sha256: expected!, identity })
      : expected === undefined && !opts.digest
      ? known({ sha256: undefined, identity })
      : hashInBackground(path, { inline: blob.size < WORKER_MIN_BYTES });
    try {
      if (opts.validated) {
        const target = open(opts.whiteouts !== 0);
        try {
          const limits = fitting(base, target);
          return await extract(path, target, limits, expected!, hashing, writer, opts, (v) => v);
        } finally {
          target.close();
        }
      }
      const job: Job = { path, blob, base, expected, identity, hashing, writer, opts };
      const target = open(false);
      let empty = false;
      try {
        empty = target.claimEmpty();
      } finally {
        if (!empty) target.close();
      }
      if (empty) return await extractIntoEmpty(job, dir, target);
      return await validateThenExtract(job, open);
    } finally {
      hashing.cancel();
    }
  } finally {
    writer?.close();
  }
}

/** What {@linkcode applyLayer} resolves to: `sha256` when a digest was expected or asked for. */
export type Applied = LayerSummary & { sha256?: string };

/**
 * The blob's digest, as {@linkcode hashInBackground} computes it, or known already (verified
 * before, or not wanted: `sha256` undefined). `identity` is the blob's when it was hashed.
 */
interface Hashing {
  result: Promise<{ sha256: string | undefined; identity: string }>;
  pace(bytes: number): void;
  hurry(): void;
  cancel(): void;
}

function known(r: { sha256: string | undefined; identity: string }): Hashing {
  return { result: Promise.resolve(r), pace() {}, hurry() {}, cancel() {} };
}

/** What {@linkcode applyLayer} hands each way of applying a blob not validated yet. */
interface Job {
  path: string;
  /** Its size and compression when the apply started (its identity says if they changed). */
  blob: { size: number; gzip: boolean };
  base: LayerLimits;
  expected: string | undefined;
  /** The blob's identity when the apply started. */
  identity: string;
  /** Its digest, computed beside the passes. */
  hashing: Hashing;
  /** Where a plain blob's files are finished, if on another thread. */
  writer: FileWriter | undefined;
  opts: ApplyOptions;
}

/**
 * {@linkcode applyLayer} onto a directory that holds nothing. One pass, every rule still run on
 * every entry before its operation, when the blob cannot write more than the room there before
 * a rule stops it (a plain tar holds its files' bytes); a compressed blob, which may inflate
 * far beyond its size, or one larger than the room, is validated first, so that an oversized
 * layer is refused before it fills the filesystem. On any failure after writing, what was
 * written is removed, which leaves the directory as a refused validation pass would (empty).
 * Interrupted, it stops at the next entry and keeps what it wrote, as the second of two passes
 * does.
 */
async function extractIntoEmpty(
  job: Job,
  dir: string,
  target: TargetDir,
): Promise<Applied> {
  const { path, blob, base, expected, identity, hashing, writer, opts } = job;
  let writing = false;
  try {
    const limits = fitting(base, target);
    let refusal = (v: Violation) => v;
    if (!cannotOutgrow(blob, limits)) {
      await validateLayer(path, { limits, signal: opts.signal, lower: (p) => target.lookup(p) });
      refusal = afterValidation(expected);
    }
    writing = true;
    const r = await extract(path, target, limits, expected, hashing, writer, opts, refusal);
    unchangedSince(path, identity);
    return r;
  } catch (err) {
    if (writing && !opts.signal?.aborted) {
      try {
        target.discardAll();
      } catch (undo) {
        // The refusal stays the error (its class, its exit code); the first line says what
        // is left to do.
        const note = `; removing the partial layer failed too (${errorText(undo)}): ` +
          `empty ${dir} before applying again`;
        if (!(err instanceof Error)) throw new ThinimageError(`${String(err)}${note}`);
        const [first, ...rest] = err.message.split("\n");
        err.message = [first + note, ...rest].join("\n");
      }
    }
    throw err;
  } finally {
    target.close();
  }
}

/**
 * Whether every byte `blob` can unpack fits `limits.unpackedBytes` (the room left, see
 * {@linkcode fitting}): true for a plain tar no larger than that, whose files' data is in it;
 * never for a gzip one.
 */
function cannotOutgrow(blob: Job["blob"], limits: LayerLimits): boolean {
  return !blob.gzip && blob.size <= limits.unpackedBytes;
}

function gzipFile(path: string): boolean {
  using file = Deno.openSync(path, { read: true });
  const head = new Uint8Array(2);
  return isGzip(head.subarray(0, file.readSync(head) ?? 0));
}

/** Validation passed, so a refusal now means the bytes differ from the ones validated. */
function afterValidation(expected: string | undefined): (v: Violation) => Violation {
  return (v) => v.rule === "sha256-mismatch" && expected !== undefined ? v : changed(v);
}

/** Refuse the blob (`blob-changed`) unless it still has the identity it had at the start. */
function unchangedSince(path: string, identity: string): void {
  if (blobIdentity(path) !== identity) {
    throw new LayerRejectedError(path, [changed({
      rule: "blob-changed",
      entry: "",
      message: `${path} was modified or replaced while it was applied`,
    })]);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/**
 * The two passes of {@linkcode applyLayer} for a blob not validated yet. The validation pass
 * only parses (it seeks over file data); a blob that changed before the extraction pass is
 * caught by its identity (inode, size, times).
 */
async function validateThenExtract(
  job: Job,
  open: (trackCreated: boolean) => TargetDir,
): Promise<Applied> {
  const { path, base, expected, identity, hashing, writer, opts } = job;
  const probe = open(false);
  let checked: LayerSummary;
  let limits: LayerLimits;
  try {
    limits = fitting(base, probe);
    checked = await validateLayer(path, {
      limits,
      signal: opts.signal,
      lower: (p) => probe.lookup(p),
    });
  } finally {
    probe.close();
  }
  const target = open(checked.whiteouts > 0);
  try {
    const r = await extract(
      path,
      target,
      limits,
      expected,
      hashing,
      writer,
      opts,
      // Known only at the end, after every entry was written into a target this keeps.
      (v) => {
        const w = afterValidation(expected)(v);
        return w.rule !== "sha256-mismatch"
          ? w
          : { ...w, message: `${w.message}; the target holds a partial layer: discard it` };
      },
    );
    unchangedSince(path, identity);
    return r;
  } finally {
    target.close();
  }
}

function blobIdentity(path: string): string {
  return fileIdentity(Deno.statSync(path));
}

/** `limits` with the layer's files held to the target's free space. */
function fitting(limits: LayerLimits, target: TargetDir): LayerLimits {
  const free = target.freeBytes();
  return free > 0 && free < limits.unpackedBytes ? { ...limits, unpackedBytes: free } : limits;
}

/**
 * The extraction pass: read `path` through the reader and rules (`hashing` it, unless its digest
 * is known or not wanted) and perform each entry's operation; the first violation stops it
 * (passed through `refusal` to name it).
 */
async function extract(
  path: string,
  target: TargetDir,
  limits: LayerLimits,
  reference: string | undefined,
  hashing: Hashing,
  fileWriter: FileWriter | undefined,
  opts: ApplyOptions,
  refusal: (v: Violation) => Violation,
): Promise<Applied> {
  const src = paced(
    await openLayerSource(path).catch((err) => {
      throw err instanceof TarViolation
        ? new LayerRejectedError(path, [refusal(err.violation)])
        : err;
    }),
    opts.signal,
  );
  const identity = blobIdentity(path);
  try {
    const reader = new TarReader(src, limits);
    const lower: LowerLookup = (p) => target.lookup(p);
    const rules = new LayerRules(limits, lower);
    // A plain tar's file data is copied by the kernel from the blob on the other thread
    // (where no worker can start, under a path-scoped --allow-read, files are done here).
    const files = src.compression === "none" ? fileWriter : undefined;
    if (files) target.attach(files);
    const writer = new LayerWriter(target, files);
    let lastProgress = 0;
    let written = 0;
    let nextCheck = opts.checkpoint ? opts.checkpointBytes ?? 0 : Infinity;
    try {
      for (let e = await reader.next(); e; e = await reader.next()) {
        opts.signal?.throwIfAborted();
        const r = rules.check(e);
        if (r.violations) throw new LayerRejectedError(path, [refusal(r.violations[0])]);
        try {
          await writer.apply(r.op, reader);
        } catch (err) {
          const v = contentViolation(err, r.op.path, e.offset);
          if (v) throw new LayerRejectedError(path, [v]);
          throw err;
        }
        if (r.op.kind === "file") {
          written += r.op.size;
          if (written >= nextCheck) {
            files?.drain(); // what the checkpoint measures must have been written
            nextCheck = written + await opts.checkpoint!(written);
          }
        }
        if (src.fileBytesRead - lastProgress >= 1 << 20) {
          lastProgress = src.fileBytesRead;
          hashing.pace(lastProgress);
          opts.onProgress?.(lastProgress, src.fileBytes);
        }
      }
      try {
        writer.finish();
      } catch (err) {
        const v = contentViolation(err, "");
        if (v) throw new LayerRejectedError(path, [v]);
        throw err;
      }
      // The other thread copied file data from the blob it opened, after this one had begun.
      if (files && files.blobInode() !== Deno.statSync(path).ino) {
        throw new LayerRejectedError(path, [refusal({
          rule: "blob-changed",
          entry: "",
          message: `${path} was replaced while it was applied`,
        })]);
      }
    } catch (err) {
      if (err instanceof TarViolation) {
        throw new LayerRejectedError(path, [refusal(err.violation)]);
      }
      throw err;
    } finally {
      // Files already queued are finished (a few hundred at most) so that a refused layer
      // leaves every entry before the refusal whole, as the one-thread path would.
      try {
        files?.drain();
      } catch { /* the error that stopped us is the one to report */ }
      files?.close();
    }
    hashing.hurry(); // nothing left to wait for but the digest
    const hashed = await hashing.result;
    if (hashed.identity !== identity || blobIdentity(path) !== identity) {
      throw new LayerRejectedError(path, [refusal({
        rule: "blob-changed",
        entry: "",
        message: `${path} was modified or replaced while it was applied`,
      })]);
    }
    const sha256 = hashed.sha256;
    if (reference !== undefined && sha256 !== reference) {
      throw new LayerRejectedError(path, [refusal({
        rule: "sha256-mismatch",
        entry: "",
        message: `SHA-256 is ${sha256}, expected ${reference}`,
      })]);
    }
    opts.onProgress?.(src.fileBytes, src.fileBytes);
    return { compression: src.compression, blobBytes: src.fileBytes, ...rules.summary(), sha256 };
  } finally {
    src.close();
  }
}

function changed(why: Violation): Violation {
  return {
    rule: "blob-changed",
    entry: "",
    message: `the blob changed after validation: ${formatViolation(why)}`,
  };
}

/** Performs layer operations inside a {@linkcode TargetDir}. */
class LayerWriter {
  readonly #t: TargetDir;
  /** Finishes files on the other thread, from the blob (a plain tar); else done here. */
  readonly #files?: FileWriter;
  /**
   * Directory mtimes, set at the end: creating children would change them again. One record a
   * path however often it is listed; `limits.directoryPathBytes` bounds their bytes.
   */
  readonly #dirTimes = new Map<string, number>();

  constructor(target: TargetDir, files?: FileWriter) {
    this.#t = target;
    this.#files = files;
  }

  async apply(op: LayerOp, reader: TarReader): Promise<void> {
    const t = this.#t;
    switch (op.kind) {
      case "file": {
        const { meta } = op;
        // The data stays in the blob, at the reader's position: copied there by the kernel.
        if (this.#files) return t.queueFile(op.path, reader.position, op.size, meta);
        const fd = t.createFile(op.path, meta.mode);
        try {
          await reader.body((chunk) => t.write(fd, chunk));
        } catch (err) {
          t.discard(fd);
          throw err;
        }
        return t.finishFile(fd, meta.uid, meta.gid, meta.mode, meta.mtime);
      }
      case "directory":
        t.directory(op.path, op.meta.uid, op.meta.gid, op.meta.mode);
        this.#dirTimes.delete(op.path); // re-inserted last: the order does not matter, the size does
        this.#dirTimes.set(op.path, op.meta.mtime);
        return;
      case "symlink":
        return t.symlink(op.path, op.target, op.meta.uid, op.meta.gid, op.meta.mtime);
      case "hardlink":
        try {
          return t.hardlink(op.path, op.target);
        } catch (err) {
          const c = (err as { code?: string }).code;
          if (c !== "ENOENT" && c !== "EPERM") throw err;
          throw new InvalidInputError(
            `hardlink '${op.path}': target '${op.target}' is ${
              c === "EPERM" ? "a directory" : "missing"
            } in the target directory`,
          );
        }
      case "whiteout":
        return t.whiteout(op.path);
      case "opaque":
        return t.opaque(op.path);
    }
  }

  /** Wait for every file, then set directory mtimes (each re-resolved: it may have been replaced since). */
  finish(): void {
    this.#files?.drain();
    for (const [path, mtime] of this.#dirTimes) this.#t.directoryTimes(path, mtime);
  }
}

/**
 * Errors the kernel returns because of what the layer holds, not because of this host: each
 * is a permanent refusal (exit 65), never retried. The rule names the cause.
 */
const CONTENT_ERRNOS: Record<string, { rule: Rule; why: string }> = {
  EMLINK: { rule: "too-many-links", why: "more hard links to one file than the filesystem allows" },
  ENAMETOOLONG: {
    rule: "path-too-long",
    why: "the path, with the links it goes through, is too long",
  },
  ELOOP: { rule: "symlink-loop", why: "too many symlinks on the way (a loop?)" },
  ENOTDIR: { rule: "parent-not-directory", why: "a parent on the way is not a directory" },
  ENOENT: { rule: "parent-missing", why: "a parent on the way is a symlink to nothing" },
  ENOSPC: { rule: "too-large-for-target", why: "the layer does not fit in the target filesystem" },
  EDQUOT: { rule: "too-large-for-target", why: "the layer does not fit in the target's quota" },
  EFBIG: {
    rule: "too-large-for-target",
    why: "a file is larger than the target filesystem allows",
  },
};

/** A kernel error caused by `op`'s content as a violation; undefined for any other error. */
function contentViolation(err: unknown, path: string, offset?: number): Violation | undefined {
  if (err instanceof LinkedParentsError) {
    return { rule: "limit-linked-parents", entry: path, offset, message: err.message };
  }
  if (err instanceof FileWriteError) return contentViolation(err.cause, err.path);
  if (!(err instanceof SyscallError)) return undefined;
  const c = CONTENT_ERRNOS[err.code];
  if (!c) return undefined;
  return { rule: c.rule, entry: path, offset, message: `${c.why} (${err.message})` };
}
