/**
 * The directory a layer is applied to, with every path resolved by the kernel inside it:
 * `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` on a descriptor of the root (an absolute
 * symlink target restarts at the root, `..` stops there, 40 links per lookup), then `*at`
 * calls on the resulting directory descriptors, with a final component never followed. Nothing
 * here builds a host path from an entry's name, so a link planted by an earlier entry cannot
 * carry a write outside.
 *
 * Parents are opened once and kept in a small cache (entries of one directory come together in
 * a tar); any removal of a directory or a symlink empties the cache, since a cached descriptor
 * may have been reached through it.
 *
 * @example
 * ```ts
 * import { TargetDir } from "./target.ts";
 * const t = TargetDir.open("/mnt/thinimage-3", { noCrossMounts: true });
 * const fd = t.createFile("etc/hostname", 0o644);
 * // write, then t.finishFile(fd, meta)
 * t.close();
 * ```
 * @module
 */
import {
  AT,
  type Libc,
  libc,
  O,
  RESOLVE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  type Stat,
  SyscallError,
} from "../host/libc.ts";
import type { FileWriter } from "./file_writer.ts";
import { HashTable, PathHasher } from "./pathhash.ts";

/** Bits of {@linkcode TargetDir.needs}: the same as the file writer's record flags. */
export const NEEDS_CHOWN = 1;
export const NEEDS_CHMOD = 2;

/** Parent descriptors kept open at once. */
const PARENT_CACHE = 16;

/**
 * A file is created on the writer's thread only while fewer records than this wait there:
 * past it, that thread has enough to do and this one creates the file itself. The threads
 * balance so, whatever the share of parsing, creating and copying a layer needs.
 */
const DEFER_BELOW = 64;

/** What a path holds, its last component not followed. */
export type Kind = "file" | "directory" | "missing";

/** A target root for one layer. Not safe to share between layers: it tracks what it created. */
export class TargetDir {
  readonly #c: Libc;
  readonly #root: number;
  readonly #resolve: number;
  /** Parent path ("a/b") -> an open directory descriptor. */
  readonly #parents = new Map<string, number>();
  /** Inodes this layer created (files, directories, symlinks): a whiteout keeps them. */
  readonly #created = new Set<number>();
  /** Lower directories this layer lists (merged): kept by a whiteout, emptied of the rest. */
  readonly #listed = new Set<number>();
  /** Directories already emptied of lower content: a repeated opaque or whiteout skips them. */
  readonly #clean = new Set<number>();
  /** Track created inodes (one statx per created object); off for a layer with no whiteouts. */
  readonly #track: boolean;
  /**
   * A directory or symlink was removed: cached parents may have been reached through it. They
   * are dropped at the start of the next operation, not in the middle of the one that removed
   * it (which still holds its parent, a directory that was not removed).
   */
  #stale = false;
  /**
   * The root's owner, mode and mtime when {@linkcode claimEmpty} found it empty: every name in
   * it is then this layer's, and {@linkcode discardAll} can put it back as it was.
   */
  #emptyRoot?: Stat;
  /** Directories made through dangling symlinks so far, and the most allowed. */
  #linkedParents = 0;
  readonly #maxLinkedParents: number;
  /** umask bits: a created mode that loses none needs no chmod. */
  readonly #umask: number;
  /** This process's effective ids: what a new file gets, unless its parent is setgid. */
  readonly #ids: { uid: number; gid: number };
  /** Open directory descriptor -> the group its new files get (its own when setgid). */
  readonly #groupOf = new Map<number, number>();
  /** The group the last file from {@linkcode createFile} was created with. */
  #createdGid = 0;
  /**
   * Where files are finished (and, when it can, created), once {@linkcode attach}ed. Creating
   * a file on its thread is safe only where this thread knows the name is free: in a
   * directory this layer made (so empty when made) and under a name not made there before.
   */
  #writer?: FileWriter;
  /** Open directory descriptor -> its inode. */
  readonly #inoOf = new Map<number, number>();
  /** Inodes of directories this layer made, while files may be created on the writer's thread. */
  readonly #fresh = new Set<number>();
  /**
   * Names made in those directories (a hash of "inode/name") -> 1 + the writer's record
   * creating it, or 0 when made here. A hash collision only keeps a file on this thread.
   */
  readonly #made = new HashTable();
  readonly #hasher = new PathHasher();
  /** Directory descriptor -> the last record that creates a file in it (not to close before). */
  readonly #lastUse = new Map<number, number>();
  readonly #nameBuf = new Uint8Array(1024);
  readonly #enc = new TextEncoder();

  private constructor(
    c: Libc,
    root: number,
    resolve: number,
    track: boolean,
    maxLinkedParents: number,
  ) {
    this.#c = c;
    this.#maxLinkedParents = maxLinkedParents;
    this.#root = root;
    this.#resolve = resolve;
    this.#track = track;
    this.#umask = c.umask();
    this.#ids = c.ids();
    this.#groupOf.set(root, this.#groupFor(root));
  }

  /**
   * Queue regular files on `writer` from now on ({@linkcode queueFile}). Unless this target
   * tracks what it creates (a layer with whiteouts), the writer's thread may also create them.
   */
  attach(writer: FileWriter): void {
    this.#writer = writer;
  }

  /** True while files may be created on the writer's thread. */
  get #defer(): boolean {
    return this.#writer !== undefined && !this.#track;
  }

  /**
   * Regular file `path` (replacing whatever is there, never following it), its data `size`
   * bytes at `offset` in the blob, finished on the attached writer's thread; created there
   * too when this thread knows the name is free and that thread has room, else here.
   */
  queueFile(
    path: string,
    offset: number,
    size: number,
    meta: { uid: number; gid: number; mode: number; mtime: number },
  ): void {
    const w = this.#writer!;
    const { parent, name } = this.#split(path, true);
    const key = this.#freshKey(parent, name);
    let fd = -1;
    let bytes: Uint8Array | undefined;
    const at = key === 0 ? undefined : this.#made.get(key);
    if (key !== 0 && at === undefined && w.backlog < DEFER_BELOW) bytes = this.#encodeName(name);
    if (bytes) this.#createdGid = this.#groupOf.get(parent) ?? -1;
    else {
      this.#claimKey(key, at);
      fd = this.#createIn(parent, name, meta.mode);
    }
    const n = this.needs(meta.uid, meta.gid, meta.mode);
    try {
      w.push({
        fd,
        parent,
        name: bytes,
        offset,
        size,
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        mtime: meta.mtime,
        chown: (n & NEEDS_CHOWN) !== 0,
        chmod: (n & NEEDS_CHMOD) !== 0,
      }, path);
    } catch (err) {
      if (fd >= 0) this.discard(fd);
      throw err;
    }
    if (!bytes) return;
    this.#made.set(key, w.head); // 1 + the record creating it
    this.#lastUse.set(parent, w.head - 1);
  }

  /** `name` as the bytes a system call takes, when it fits NAME_MAX; else undefined. */
  #encodeName(name: string): Uint8Array | undefined {
    const buf = this.#nameBuf;
    if (name.length > 255) return undefined;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) {
        const { read, written } = this.#enc.encodeInto(name, buf);
        return read === name.length && written <= 255 ? buf.subarray(0, written) : undefined;
      }
      buf[i] = c;
    }
    return buf.subarray(0, name.length);
  }

  /**
   * The key of `name` in `parent` when `parent` is a directory this layer made, while files
   * may be created on the writer's thread; else 0.
   */
  #freshKey(parent: number, name: string): number {
    if (!this.#defer || this.#fresh.size === 0) return 0;
    const ino = this.#inoOf.get(parent);
    if (ino === undefined || !this.#fresh.has(ino)) return 0;
    return this.#hasher.hashIn(ino, name);
  }

  /**
   * Before this thread makes or replaces `name` in `parent`: wait for the writer if its thread
   * is still creating that very name, and note the name as made.
   */
  #claim(parent: number, name: string): void {
    this.#claimKey(this.#freshKey(parent, name));
  }

  /** {@linkcode #claim} by key (0: not in a fresh directory), `at` its entry in `#made`. */
  #claimKey(key: number, at = key === 0 ? undefined : this.#made.get(key)): void {
    if (key === 0) return;
    this.#awaitRecord(at);
    this.#made.set(key, 0); // made here
  }

  /** Before an operation that may look at or remove any name: every queued file exists. */
  #settle(): void {
    if (this.#defer) this.#writer!.drain();
  }

  /**
   * Open `dir` as a root. `noCrossMounts`: refuse to resolve across a mount point inside it
   * (a fresh snapshot has none). `trackCreated`: false when the layer is known to hold no
   * whiteout or opaque marker, which spares a statx per created object.
   */
  static open(
    dir: string,
    opts: { noCrossMounts?: boolean; trackCreated?: boolean; linkedParents?: number } = {},
  ): TargetDir {
    const c = libc();
    const root = c.open(dir, O.RDONLY | O.DIRECTORY);
    let resolve = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
    if (opts.noCrossMounts) resolve |= RESOLVE.NO_XDEV;
    return new TargetDir(c, root, resolve, opts.trackCreated ?? true, opts.linkedParents ?? 1000);
  }

  /**
   * True when the root holds nothing, and from then on this target counts on it: whatever it
   * will hold is this layer's, so whiteouts and opaque markers (which remove only what lower
   * layers left) have nothing to do, and {@linkcode discardAll} can undo the whole layer.
   */
  claimEmpty(): boolean {
    if (this.#rootNames().length > 0) return false;
    this.#emptyRoot = this.#c.lstatat(this.#root, "");
    return true;
  }

  /** The names in the root, read through a descriptor of its own (a listing moves its offset). */
  #rootNames(): Uint8Array[] {
    const fd = this.#c.openat(this.#root, ".", O.RDONLY | O.DIRECTORY);
    try {
      return this.#c.readdir(fd);
    } finally {
      this.#c.close(fd);
    }
  }

  /**
   * After a failed apply onto a root {@linkcode claimEmpty} found empty: remove everything in
   * it (never following a link: each directory is opened by descriptor, without following)
   * and give the root back its owner, mode and mtime. Its change time moves.
   */
  discardAll(): void {
    const was = this.#emptyRoot;
    if (!was) throw new Error("discardAll: the root was not claimed empty");
    // The writer finished or stopped by now: nothing is created behind us, no record is left.
    this.#writer = undefined;
    this.#lastUse.clear();
    this.#dropParents();
    for (const name of this.#rootNames()) this.#removeAt(this.#root, name);
    this.#c.fchown(this.#root, was.uid, was.gid);
    this.#c.fchmod(this.#root, was.mode & 0o7777);
    this.#c.futimes(this.#root, was.mtimeSec, was.mtimeNsec);
  }

  /** Free bytes on the target's filesystem (for unprivileged writers). */
  freeBytes(): number {
    return this.#c.fsFree(this.#root).availBytes;
  }

  /**
   * Create regular file `path` (replacing whatever is there, never following it) and return a
   * descriptor open for writing. Missing parents are created (0755, as tar does).
   */
  createFile(path: string, mode: number): number {
    const { parent, name } = this.#split(path, true);
    this.#claim(parent, name);
    return this.#createIn(parent, name, mode);
  }

  #createIn(parent: number, name: string, mode: number): number {
    const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.NOCTTY;
    let fd: number;
    try {
      fd = this.#c.openat(parent, name, flags, mode & 0o777);
    } catch (err) {
      if (code(err) !== "EEXIST") throw err;
      this.#removeAt(parent, name);
      fd = this.#c.openat(parent, name, flags, mode & 0o777);
    }
    if (this.#track) this.#created.add(this.#c.lstatat(fd, "").ino);
    this.#createdGid = this.#groupOf.get(parent) ?? -1;
    return fd;
  }

  /**
   * What the last file from {@linkcode createFile} still needs so that it has this owner and
   * mode: a chown unless it was created with them, a chmod when creation could not give the
   * mode (setuid, setgid or sticky bits, which a chown would clear anyway, or bits the umask
   * took). Most layers are root's files made by root: neither.
   */
  needs(uid: number, gid: number, mode: number): number {
    return (uid !== this.#ids.uid || gid !== this.#createdGid ? NEEDS_CHOWN : 0) |
      ((mode & 0o7000) !== 0 || (mode & this.#umask & 0o777) !== 0 ? NEEDS_CHMOD : 0);
  }

  /** Set owner, mode and times on a file from {@linkcode createFile}, and close it. */
  finishFile(fd: number, uid: number, gid: number, mode: number, mtime: number): void {
    try {
      const n = this.needs(uid, gid, mode);
      // chown before chmod: chown clears setuid and setgid.
      if (n & NEEDS_CHOWN) this.#c.fchown(fd, uid, gid);
      if (n & NEEDS_CHMOD) this.#c.fchmod(fd, mode);
      this.#c.futimes(fd, mtime);
    } finally {
      this.#c.close(fd);
    }
  }

  /** Close a file from {@linkcode createFile} that will not be finished. */
  discard(fd: number): void {
    this.#c.close(fd);
  }

  /**
   * Make directory `path` (merging with a directory already there, replacing anything else)
   * with this owner and mode; its mtime is the caller's to set last. "" is the root.
   */
  directory(path: string, uid: number, gid: number, mode: number): void {
    let fd: number;
    let mine = true;
    if (path === "") {
      fd = this.#root;
      mine = false;
    } else {
      const { parent, name } = this.#split(path, true);
      this.#claim(parent, name);
      try {
        this.#c.mkdirat(parent, name, 0o700);
      } catch (err) {
        if (code(err) !== "EEXIST") throw err;
        if ((this.#c.lstatat(parent, name).mode & S_IFMT) === S_IFDIR) mine = false;
        else {
          this.#removeAt(parent, name);
          this.#c.mkdirat(parent, name, 0o700);
        }
      }
      fd = this.#c.openat(parent, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    }
    this.#c.fchown(fd, uid, gid);
    this.#c.fchmod(fd, mode);
    if (this.#track) {
      const ino = this.#c.lstatat(fd, "").ino;
      (mine ? this.#created : this.#listed).add(ino);
    }
    if (fd === this.#root) this.#groupOf.set(fd, mode & 0o2000 ? gid : this.#ids.gid);
    else {
      this.#cacheParent(path, fd); // after chmod: the group new files get is known now
      if (mine && this.#defer) this.#fresh.add(this.#inoOf.get(fd)!);
    }
    // A directory that was there may also be cached under another path (through a link),
    // with the group its files got before this entry.
    if (!mine) this.#stale = true;
  }

  /** Set the times of directory `path` if it is still a directory ("" is the root). */
  directoryTimes(path: string, mtime: number): void {
    const fd = this.#openExistingDir(path);
    if (fd === null) return; // replaced or removed by a later entry: nothing to set
    try {
      this.#c.futimes(fd, mtime);
    } finally {
      if (fd !== this.#root) this.#c.close(fd);
    }
  }

  /** Make symlink `path` -> `target` (the target is stored, never resolved here). */
  symlink(path: string, target: string, uid: number, gid: number, mtime: number): void {
    const { parent, name } = this.#split(path, true);
    this.#claim(parent, name);
    try {
      this.#c.symlinkat(target, parent, name);
    } catch (err) {
      if (code(err) !== "EEXIST") throw err;
      this.#removeAt(parent, name);
      this.#c.symlinkat(target, parent, name);
    }
    // A new link has this process's user and the group its directory gives new names.
    if (uid !== this.#ids.uid || gid !== (this.#groupOf.get(parent) ?? -1)) {
      this.#c.fchownat(parent, name, uid, gid, AT.SYMLINK_NOFOLLOW);
    }
    this.#c.utimensat(parent, name, mtime, AT.SYMLINK_NOFOLLOW);
    if (this.#track) this.#created.add(this.#c.lstatat(parent, name).ino);
  }

  /**
   * Make `path` a hard link to `target` (both inside the root; a final symlink at `target` is
   * linked itself, not followed). Throws SyscallError ENOENT when the target is missing.
   */
  hardlink(path: string, target: string): void {
    try {
      this.#link(path, target);
    } catch (err) {
      // A miss may be a file the writer's thread has still to create, along the way or at
      // the end: the same call once everything queued exists gives the layer's own answer.
      if (!this.#defer || this.#writer!.backlog === 0) throw err;
      this.#settle();
      this.#link(path, target);
    }
  }

  #link(path: string, target: string): void {
    const t = this.#openParentUncached(target);
    try {
      this.#awaitCreated(t.fd, t.name); // a link to a file still queued would find nothing
      const { parent, name } = this.#split(path, true);
      this.#claim(parent, name);
      try {
        this.#c.linkat(t.fd, t.name, parent, name);
      } catch (err) {
        if (code(err) !== "EEXIST") throw err;
        this.#removeAt(parent, name);
        this.#c.linkat(t.fd, t.name, parent, name);
      }
    } finally {
      if (t.fd !== this.#root) this.#c.close(t.fd);
    }
  }

  /**
   * Wait for the writer when `name` in directory `dir` is a file its thread has still to
   * create: a layer of many hard links would otherwise wait for the whole queue at each one.
   */
  #awaitCreated(dir: number, name: string): void {
    if (!this.#defer || this.#fresh.size === 0) return;
    const ino = dir === this.#root ? this.#inoOf.get(dir)! : this.#c.lstatat(dir, "").ino;
    if (!this.#fresh.has(ino)) return;
    this.#awaitRecord(this.#made.get(this.#hasher.hashIn(ino, name)));
  }

  /** Wait for the writer when `at` (an entry of `#made`) is a record it has still to do. */
  #awaitRecord(at: number | undefined): void {
    if (at !== undefined && at > this.#writer!.tail) this.#writer!.drain();
  }

  /** What is at `path` (its last component not followed). */
  lookup(path: string): Kind {
    if (path === "") return "directory";
    this.#settle();
    let t: { fd: number; name: string };
    try {
      t = this.#openParentUncached(path);
    } catch (err) {
      if (["ENOENT", "ENOTDIR", "ELOOP"].includes(code(err)!)) return "missing";
      throw err;
    }
    try {
      const st = this.#c.lstatat(t.fd, t.name);
      return (st.mode & S_IFMT) === S_IFDIR ? "directory" : "file";
    } catch (err) {
      if (["ENOENT", "ENOTDIR"].includes(code(err)!)) return "missing";
      throw err;
    } finally {
      if (t.fd !== this.#root) this.#c.close(t.fd);
    }
  }

  /**
   * A whiteout: remove what lower layers left at `path`. What this layer created stays; a
   * directory this layer lists or wrote into stays, emptied of lower content.
   */
  whiteout(path: string): void {
    if (this.#emptyRoot) return; // no lower layer
    this.#settle();
    const p = this.#splitExisting(path);
    if (!p) return;
    let st: Stat;
    try {
      st = this.#c.lstatat(p.parent, p.name);
    } catch (err) {
      if (code(err) === "ENOENT") return;
      throw err;
    }
    this.#removeLowerAt(p.parent, p.name, st);
  }

  /** Write all of `data` to `fd` (from {@linkcode createFile}). */
  write(fd: number, data: Uint8Array): void {
    this.#c.write(fd, data);
  }

  /** An opaque marker: empty directory `path` of lower content, keeping this layer's. */
  opaque(path: string): void {
    if (this.#emptyRoot) return; // no lower layer
    this.#settle();
    const fd = this.#openExistingDir(path);
    if (fd === null) return;
    try {
      this.#emptyLower(fd, this.#c.lstatat(fd, "").ino);
    } finally {
      if (fd !== this.#root) this.#c.close(fd);
    }
  }

  /**
   * A descriptor of directory `path` ("" is the root itself, not to be closed), its last
   * component not followed; null when nothing, or no directory, is there.
   */
  #openExistingDir(path: string): number | null {
    if (path === "") return this.#root;
    try {
      return this.#c.openat2(
        this.#root,
        path,
        O.RDONLY | O.DIRECTORY | O.NOFOLLOW,
        0,
        this.#resolve,
      );
    } catch (err) {
      if (["ENOENT", "ENOTDIR", "ELOOP"].includes(code(err)!)) return null;
      throw err;
    }
  }

  /** Close every descriptor. */
  close(): void {
    this.#dropParents();
    this.#c.close(this.#root);
  }

  /** Remove lower content at `name` in `dirfd`, whose stat is `st`; true when something stays. */
  #removeLowerAt(dirfd: number, name: string | Uint8Array, st: Stat): boolean {
    if (this.#created.has(st.ino)) return true;
    if ((st.mode & S_IFMT) !== S_IFDIR) {
      this.#c.unlinkat(dirfd, name, 0);
      if ((st.mode & S_IFMT) === S_IFLNK) this.#stale = true;
      return false;
    }
    const fd = this.#c.openat(dirfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    let empty: boolean;
    try {
      empty = this.#emptyLower(fd, st.ino);
    } finally {
      this.#c.close(fd);
    }
    if (!empty || this.#listed.has(st.ino)) return true;
    this.#c.unlinkat(dirfd, name, AT.REMOVEDIR);
    this.#stale = true;
    return false;
  }

  /**
   * Remove lower content inside directory `fd` (inode `ino`); true when nothing is left. A
   * directory already emptied, or made by this layer, holds only this layer's content: it is
   * not listed again, however many markers name it.
   */
  #emptyLower(fd: number, ino: number): boolean {
    if (this.#clean.has(ino) || this.#created.has(ino)) return false;
    let left = 0;
    for (const child of this.#c.readdir(fd)) {
      if (this.#removeLowerAt(fd, child, this.#c.lstatat(fd, child))) left++;
    }
    this.#clean.add(ino);
    return left === 0;
  }

  /** Remove whatever is at `name` in `dirfd` (a directory with everything in it). */
  #removeAt(dirfd: number, name: string | Uint8Array): void {
    const st = this.#c.lstatat(dirfd, name);
    if ((st.mode & S_IFMT) === S_IFDIR) {
      this.#settle(); // files may still be queued for creation inside
      const fd = this.#c.openat(dirfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      try {
        for (const child of this.#c.readdir(fd)) this.#removeAt(fd, child);
      } finally {
        this.#c.close(fd);
      }
      this.#c.unlinkat(dirfd, name, AT.REMOVEDIR);
      this.#stale = true;
      return;
    }
    this.#c.unlinkat(dirfd, name, 0);
    if ((st.mode & S_IFMT) === S_IFLNK) this.#stale = true;
  }

  /** The parent descriptor (cached) and last component of `path`. */
  #split(path: string, create: boolean): { parent: number; name: string } {
    if (this.#stale) this.#dropParents();
    const slash = path.lastIndexOf("/");
    if (slash < 0) return { parent: this.#root, name: path };
    return { parent: this.#dir(path.slice(0, slash), create), name: path.slice(slash + 1) };
  }

  /** Like {@linkcode #split} without creating; null when the parent is missing. */
  #splitExisting(path: string): { parent: number; name: string } | null {
    try {
      return this.#split(path, false);
    } catch (err) {
      if (["ENOENT", "ENOTDIR", "ELOOP"].includes(code(err)!)) return null;
      throw err;
    }
  }

  /** An open descriptor of directory `path` (cached), creating missing components. */
  #dir(path: string, create: boolean, links = { followed: 0 }): number {
    const hit = this.#parents.get(path);
    if (hit !== undefined) return hit;
    let fd: number;
    try {
      fd = this.#openDir(path);
    } catch (err) {
      if (!create || code(err) !== "ENOENT") throw err;
      fd = this.#makeDir(path, err, links);
    }
    this.#cacheParent(path, fd);
    return fd;
  }

  /**
   * Create directory `path`, which the kernel did not find (`notFound`), as tar does for
   * parents an archive does not list. Where a component is a symlink to a missing place, the
   * directory is made where the link points (inside the root), as Docker's applier does; the
   * links followed so count against the kernel's 40, and against the layer's budget
   * {@linkcode LayerLimits.linkedParents}.
   */
  #makeDir(path: string, notFound: unknown, links: { followed: number }): number {
    const { parent, name } = this.#splitFor(path, links);
    // Only real names are made: "." and ".." are the kernel's to resolve.
    if (name === "" || name === "." || name === "..") throw notFound;
    // A file still queued under this name is what is missing: made first, it is no directory.
    this.#claim(parent, name);
    try {
      this.#c.mkdirat(parent, name, 0o755);
    } catch (err) {
      if (code(err) !== "EEXIST") throw err;
      const st = this.#c.lstatat(parent, name);
      if ((st.mode & S_IFMT) === S_IFDIR) {
        return this.#c.openat(parent, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      }
      if ((st.mode & S_IFMT) !== S_IFLNK) throw new SyscallError("mkdirat", ENOTDIR, path);
      if (++links.followed > MAX_LINKS) throw new SyscallError("openat2", ELOOP, path);
      if (++this.#linkedParents > this.#maxLinkedParents) {
        throw new LinkedParentsError(this.#maxLinkedParents);
      }
      const target = this.#c.readlinkat(parent, name);
      const slash = path.lastIndexOf("/");
      const there = target.startsWith("/") || slash < 0
        ? target
        : `${path.slice(0, slash)}/${target}`;
      return this.#dir(tidy(there), true, links);
    }
    const fd = this.#c.openat(parent, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    if (this.#track) this.#created.add(this.#c.lstatat(fd, "").ino);
    if (this.#defer) this.#fresh.add(this.#c.lstatat(fd, "").ino);
    return fd;
  }

  /** {@linkcode #split} with creation, carrying the links followed so far. */
  #splitFor(path: string, links: { followed: number }): { parent: number; name: string } {
    const slash = path.lastIndexOf("/");
    if (slash < 0) return { parent: this.#root, name: path };
    return { parent: this.#dir(path.slice(0, slash), true, links), name: path.slice(slash + 1) };
  }

  #openDir(path: string): number {
    return this.#c.openat2(this.#root, path, O.RDONLY | O.DIRECTORY, 0, this.#resolve);
  }

  /** The parent of `path` opened afresh (the caller closes it unless it is the root). */
  #openParentUncached(path: string): { fd: number; name: string } {
    const slash = path.lastIndexOf("/");
    if (slash < 0) return { fd: this.#root, name: path };
    return { fd: this.#openDir(path.slice(0, slash)), name: path.slice(slash + 1) };
  }

  #cacheParent(path: string, fd: number): void {
    // A directory made through a symlink is cached under the link's target path already.
    for (const v of this.#parents.values()) if (v === fd) return;
    const old = this.#parents.get(path);
    if (old !== undefined) this.#release(old);
    else if (this.#parents.size >= PARENT_CACHE) this.#dropParents();
    this.#parents.set(path, fd);
    this.#groupOf.set(fd, this.#groupFor(fd));
  }

  /** The group a file created in directory `fd` gets (and, on the way, `fd`'s inode). */
  #groupFor(fd: number): number {
    const st = this.#c.lstatat(fd, "");
    this.#inoOf.set(fd, st.ino);
    return st.mode & 0o2000 ? st.gid : this.#ids.gid;
  }

  /** Close cached directory `fd`, once no queued file is still to be created in it. */
  #release(fd: number): void {
    this.#groupOf.delete(fd);
    this.#inoOf.delete(fd);
    const last = this.#lastUse.get(fd);
    if (last === undefined) return this.#c.close(fd);
    this.#lastUse.delete(fd);
    if (last < this.#writer!.tail) return this.#c.close(fd);
    this.#writer!.release(fd, (d) => this.#c.close(d));
  }

  #dropParents(): void {
    for (const fd of this.#parents.values()) this.#release(fd);
    this.#parents.clear();
    this.#stale = false;
  }
}

/**
 * A symlink target as a path to resolve from the root: leading slashes (the root, under
 * RESOLVE_IN_ROOT), empty and "." components and trailing slashes dropped; ".." is kept for
 * the kernel, which resolves it against the real directory.
 */
function tidy(p: string): string {
  return p.split("/").filter((c) => c !== "" && c !== ".").join("/");
}

/** A layer made more directories through dangling symlinks than its budget allows. */
export class LinkedParentsError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} directories created through symlinks to missing places`);
  }
}

const ENOTDIR = 20;
const ELOOP = 40;
/** Symlinks one lookup may follow, as the kernel's own limit. */
const MAX_LINKS = 40;

function code(err: unknown): string | undefined {
  return (err as { code?: string })?.code;
}
