/**
 * Apply a layer onto a directory (a mounted thin snapshot, or any directory for debugging):
 * validate the whole blob first, writing nothing if it is refused; then read it again through
 * the same reader and rules, re-hashing it, and perform each entry's operation inside the
 * directory as a chroot. OCI semantics: later entries replace earlier ones, whiteouts and
 * opaque markers remove only what lower layers left and are never created themselves.
 *
 * Writes are synchronous (much faster than async in Deno) and not fsynced: the caller syncs
 * the filesystem once afterwards.
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
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lchownSync,
  lutimesSync,
  openSync,
  writeSync,
} from "node:fs";
import { InvalidInputError, MissingPermissionError, ThinimageError } from "../errors.ts";
import { ChrootDir } from "./chroot.ts";
import { type LayerLimits, resolveLimits } from "./limits.ts";
import { TarReader } from "./reader.ts";
import { type EntryMeta, type LayerOp, LayerRules, type LayerSummary } from "./rules.ts";
import { openLayerSource } from "./source.ts";
import { formatViolation, LayerRejectedError, TarViolation, type Violation } from "./violation.ts";
import { validateLayer } from "./validate.ts";

/** Options of {@linkcode applyLayer}. */
export interface ApplyOptions {
  /** Refuse the blob unless its SHA-256 is this (hex). */
  expectedSha256?: string;
  /**
   * The blob already passed `validateLayer` and `expectedSha256` is the digest it had then:
   * skip the validation pass and apply in one pass. Every rule still runs on every entry
   * through the same reader, and the digest is still checked as the blob is read, so a
   * hostile or swapped blob is still refused, but only after part of it was written: for a
   * target the caller discards on failure (a fresh snapshot), never for one it keeps.
   */
  validated?: boolean;
  /** Overrides of the default limits. */
  limits?: Partial<LayerLimits>;
  /** Stop at the next entry (rejects with the signal's reason; what was written stays). */
  signal?: AbortSignal;
  /** Called as the blob is applied, with blob bytes read so far and the blob's size. */
  onProgress?: (bytesApplied: number, total: number) => void;
}

/**
 * Validate `path`, then apply it onto `dir`. Resolves to the layer summary and the blob's
 * SHA-256. Rejects with {@linkcode LayerRejectedError}: before writing anything when validation
 * fails; after writing when the blob's SHA-256 differs from `expectedSha256` (rule
 * `sha256-mismatch`) or the blob changed between the passes (`blob-changed`). Every entry written
 * passed the rules either way, so nothing lands outside `dir`, but `dir` holds a partial layer
 * that the caller discards. With `validated`, there is one pass and any refusal comes after a
 * partial write, naming the rule the entry broke.
 */
export async function applyLayer(
  path: string,
  dir: string,
  opts: ApplyOptions = {},
): Promise<LayerSummary & { sha256: string }> {
  const limits = resolveLimits(opts.limits);
  const expected = opts.expectedSha256?.toLowerCase();
  if (opts.validated && expected === undefined) {
    // Without a digest to hold it to, one pass could not tell a swapped blob from the one
    // that was validated.
    throw new TypeError("applyLayer: `validated` needs `expectedSha256`");
  }
  const root = new ChrootDir(dir);
  if (root.root === "/") throw new ThinimageError("refusing to apply a layer onto /");
  const lower = (p: string) => root.lookup(p);
  if (opts.validated) {
    return await extract(path, root, limits, lower, expected!, opts, (v) => v);
  }
  // With an expected digest (verified when the blob was fetched) the validation pass need not
  // hash: it seeks over file data, and the extraction pass checks the digest again.
  const checked = await validateLayer(path, {
    limits,
    signal: opts.signal,
    sha256: expected === undefined,
    lower,
  });
  if (checked.symlinks > 0 && !canSymlink()) {
    // Fail before writing anything rather than half-way through.
    throw noSymlinks(checked.symlinks);
  }
  return await extract(
    path,
    root,
    limits,
    lower,
    expected ?? checked.sha256!,
    opts,
    // Validation passed, so a refusal now means the bytes differ from the ones validated.
    (v) => v.rule === "sha256-mismatch" && expected !== undefined ? v : changed(v),
  );
}

/**
 * Deno creates symlinks only with unscoped --allow-write (a path-scoped grant cannot vouch for
 * where a link points).
 */
function canSymlink(): boolean {
  return Deno.permissions.querySync({ name: "write" }).state === "granted";
}

function noSymlinks(n?: number): MissingPermissionError {
  const has = n === undefined ? "symlinks" : `${n} symlinks`;
  return new MissingPermissionError(
    "--allow-write",
    new Error(`layer has ${has}, and Deno creates symlinks only with unscoped --allow-write`),
  );
}

/**
 * The extraction pass: read `path` through the reader and rules, hashing it, and perform each
 * entry's operation; the first violation stops it (passed through `refusal` to name it).
 */
async function extract(
  path: string,
  root: ChrootDir,
  limits: LayerLimits,
  lower: (p: string) => "file" | "directory" | "missing",
  reference: string,
  opts: ApplyOptions,
  refusal: (v: Violation) => Violation,
): Promise<LayerSummary & { sha256: string }> {
  const src = await openLayerSource(path, { sha256: true }).catch((err) => {
    throw err instanceof TarViolation
      ? new LayerRejectedError(path, [refusal(err.violation)])
      : err;
  });
  try {
    const reader = new TarReader(src, limits);
    const rules = new LayerRules(limits, lower);
    const writer = new LayerWriter(root);
    const symlinksOk = canSymlink();
    let lastProgress = 0;
    try {
      for (let e = await reader.next(); e; e = await reader.next()) {
        opts.signal?.throwIfAborted();
        const r = rules.check(e);
        if (r.violations) throw new LayerRejectedError(path, [refusal(r.violations[0])]);
        if (r.op.kind === "symlink" && !symlinksOk) throw noSymlinks();
        await writer.apply(r.op, reader);
        if (opts.onProgress && src.fileBytesRead - lastProgress >= 1 << 20) {
          lastProgress = src.fileBytesRead;
          opts.onProgress(src.fileBytesRead, src.fileBytes);
        }
      }
    } catch (err) {
      if (err instanceof TarViolation) {
        throw new LayerRejectedError(path, [refusal(err.violation)]);
      }
      throw err;
    }
    writer.finish();
    const sha256 = (await src.sha256())!;
    if (sha256 !== reference) {
      throw new LayerRejectedError(path, [refusal({
        rule: "sha256-mismatch",
        entry: "",
        message:
          `SHA-256 is ${sha256}, expected ${reference}; ${root.root} holds a partial layer: discard it`,
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

/** Opens a staged file: one of ours that exists already (O_NOFOLLOW all the same). */
const OPEN_STAGED = constants.O_WRONLY | constants.O_NOFOLLOW;
/** Names of files being written at the target's root before they are moved into place. */
const STAGED_PREFIX = ".thinimage-staged-";

/** Performs layer operations inside a {@linkcode ChrootDir}. */
class LayerWriter {
  readonly #root: ChrootDir;
  /** Paths this layer created, and every ancestor of them: whiteouts and opaques keep these. */
  #mine: Set<string> | undefined;
  /**
   * Paths written since `#mine` was last brought up to date: it is built only when a whiteout
   * or opaque marker needs it (most layers have none), sparing a hash of every path.
   */
  #written: string[] = [];
  /** Directory mtimes, set at the end: creating children would change them again. */
  readonly #dirTimes: [string, number][] = [];
  /** Owner and group a file staged at the root gets, once seen. */
  #stagedOwner: [number, number] | undefined;

  constructor(root: ChrootDir) {
    this.#root = root;
  }

  async apply(op: LayerOp, reader: TarReader): Promise<void> {
    switch (op.kind) {
      case "file":
        return await this.#file(op.path, op.meta, reader);
      case "directory":
        return this.#directory(op.path, op.meta);
      case "symlink": {
        const loc = this.#root.locate(op.path, { create: true })!;
        const host = `${loc.parent}/${loc.name}`;
        try {
          Deno.symlinkSync(op.target, host); // fails on anything existing; never follows it
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
          this.#removeAny(host);
          Deno.symlinkSync(op.target, host);
        }
        lchownSync(host, op.meta.uid, op.meta.gid);
        lutimesSync(host, op.meta.mtime, op.meta.mtime);
        return this.#remember(op.path);
      }
      case "hardlink": {
        const t = this.#root.locate(op.target, { create: false });
        const tHost = t && `${t.parent}/${t.name}`;
        let st: Deno.FileInfo | undefined;
        try {
          st = tHost ? Deno.lstatSync(tHost) : undefined;
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
        if (!tHost || !st || st.isDirectory) {
          throw new InvalidInputError(
            `hardlink '${op.path}': target '${op.target}' is ${
              st ? "a directory" : "missing"
            } in the target directory`,
          );
        }
        const host = this.#clear(op.path);
        // link(2) does not follow a final symlink: a link to a symlink copies the symlink.
        Deno.linkSync(tHost, host);
        return this.#remember(op.path);
      }
      case "whiteout": {
        const loc = this.#root.locate(op.path, { create: false });
        if (loc) this.#removeLower(`${loc.parent}/${loc.name}`, op.path);
        return;
      }
      case "opaque": {
        const host = this.#root.resolveDir(op.path === "" ? [] : op.path.split("/"), {
          create: false,
        });
        if (host === null) return;
        for (const child of [...Deno.readDirSync(host)]) {
          this.#removeLower(
            `${host}/${child.name}`,
            op.path === "" ? child.name : `${op.path}/${child.name}`,
          );
        }
        return;
      }
    }
  }

  /** Set directory mtimes, deepest first, re-resolving each (it may have been replaced). */
  finish(): void {
    for (let i = this.#dirTimes.length - 1; i >= 0; i--) {
      const [path, mtime] = this.#dirTimes[i];
      let host: string | null;
      if (path === "") host = this.#root.root;
      else {
        const loc = this.#root.locate(path, { create: false });
        host = loc && `${loc.parent}/${loc.name}`;
      }
      if (host === null) continue;
      try {
        if (!Deno.lstatSync(host).isDirectory) continue;
      } catch {
        continue;
      }
      lutimesSync(host, mtime, mtime);
    }
  }

  async #file(path: string, meta: EntryMeta, reader: TarReader): Promise<void> {
    const loc = this.#root.locate(path, { create: true })!;
    const host = `${loc.parent}/${loc.name}`;
    // Deno's open canonicalizes its path first, with a readlink per component (twice over for
    // a file that does not exist yet): 2 x depth syscalls per file, most of the cost where
    // syscalls are dear (an emulated VM). Creating a temporary file does not. So the file is
    // made at the root, the shortest path on this filesystem, opened there once it exists,
    // filled, and renamed into place.
    const tmp = Deno.makeTempFileSync({ dir: this.#root.root, prefix: STAGED_PREFIX });
    try {
      const fd = openSync(tmp, OPEN_STAGED);
      try {
        await this.#fill(fd, meta, reader);
      } finally {
        closeSync(fd);
      }
      this.#place(tmp, host, meta);
    } catch (err) {
      try {
        Deno.removeSync(tmp);
      } catch { /* placed already */ }
      throw err;
    }
    this.#remember(path);
  }

  /** Move the filled file `tmp` to `host`, replacing whatever is there (never following it). */
  #place(tmp: string, host: string, meta: EntryMeta): void {
    try {
      Deno.renameSync(tmp, host); // replaces a file or a symlink itself
      this.#root.replaced(host);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "EXDEV") {
        this.#removeAny(host); // a directory: rename cannot replace it
        Deno.renameSync(tmp, host);
        return;
      }
    }
    // `host` is on another filesystem mounted inside the target (not a snapshot, then): copy.
    this.#removeAny(host);
    Deno.copyFileSync(tmp, host);
    Deno.removeSync(tmp);
    lchownSync(host, meta.uid, meta.gid);
    Deno.chmodSync(host, meta.mode); // a regular file this call just created
    lutimesSync(host, meta.mtime, meta.mtime);
  }

  /** Write the entry's data into `fd`, then its metadata. */
  async #fill(fd: number, meta: EntryMeta, reader: TarReader): Promise<void> {
    await reader.body((chunk) => {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    });
    // On the descriptor just created, not a path: nothing can be swapped in between.
    // Every staged file starts with the same owner (this process's, or the root's group when
    // the root is setgid), most entries want exactly that (root:root), and chown to the owner
    // a file has changes nothing: learn it once, skip those calls.
    if (this.#stagedOwner === undefined) {
      const st = fstatSync(fd);
      this.#stagedOwner = [st.uid, st.gid];
    }
    if (meta.uid !== this.#stagedOwner[0] || meta.gid !== this.#stagedOwner[1]) {
      fchownSync(fd, meta.uid, meta.gid); // before chmod: chown clears setuid/setgid
    }
    fchmodSync(fd, meta.mode);
    futimesSync(fd, meta.mtime, meta.mtime);
  }

  #directory(path: string, meta: EntryMeta): void {
    let host: string;
    if (path === "") host = this.#root.root;
    else {
      const loc = this.#root.locate(path, { create: true })!;
      host = `${loc.parent}/${loc.name}`;
      try {
        Deno.mkdirSync(host, { mode: 0o700 });
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
        // A directory over a directory merges (the later entry's metadata wins); anything
        // else is replaced.
        if (!Deno.lstatSync(host).isDirectory) {
          this.#removeAny(host);
          Deno.mkdirSync(host, { mode: 0o700 });
        }
      }
      this.#root.knownDir(path, host);
    }
    lchownSync(host, meta.uid, meta.gid);
    Deno.chmodSync(host, meta.mode); // host is a directory, checked just above
    // The root's group and setgid bit decide the group of files staged there.
    if (path === "") this.#stagedOwner = undefined;
    this.#dirTimes.push([path, meta.mtime]);
    this.#remember(path);
  }

  /** Make room at `path` for a new non-directory; returns its host path. */
  #clear(path: string): string {
    const loc = this.#root.locate(path, { create: true })!;
    const host = `${loc.parent}/${loc.name}`;
    this.#removeAny(host);
    return host;
  }

  /** Remove whatever is at `host` (never following it); nothing if absent. */
  #removeAny(host: string): void {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(host);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    // remove_dir_all does not follow symlinks inside the tree
    Deno.removeSync(host, { recursive: st.isDirectory });
    // Cached resolutions go through directories and the symlinks they followed, never through
    // a regular file or a symlink they did not follow.
    if (st.isDirectory) this.#root.invalidate();
    else if (st.isSymlink) this.#root.replaced(host);
  }

  /**
   * Remove what lower layers left at `host` (logical `path`), keeping what this layer wrote:
   * a path this layer wrote stays; a directory this layer wrote into is emptied of the rest.
   */
  #removeLower(host: string, path: string): void {
    if (!this.#mineSet().has(path)) return this.#removeAny(host);
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(host);
    } catch {
      return;
    }
    if (!st.isDirectory) return;
    for (const child of [...Deno.readDirSync(host)]) {
      this.#removeLower(`${host}/${child.name}`, `${path}/${child.name}`);
    }
  }

  #remember(path: string): void {
    if (this.#mine) addWithAncestors(this.#mine, path);
    else this.#written.push(path);
  }

  #mineSet(): Set<string> {
    if (!this.#mine) {
      this.#mine = new Set();
      for (const p of this.#written) addWithAncestors(this.#mine, p);
      this.#written = [];
    }
    return this.#mine;
  }
}

/** Add `path` and its ancestors: a whiteout or opaque marker keeps what this layer wrote into. */
function addWithAncestors(mine: Set<string>, path: string): void {
  for (
    let p = path;
    p !== "" && !mine.has(p);
    p = p.slice(0, Math.max(0, p.lastIndexOf("/")))
  ) {
    mine.add(p);
  }
  mine.add(path);
}
