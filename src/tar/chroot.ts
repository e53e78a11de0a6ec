/**
 * Paths inside a target directory treated as a chroot, without openat: each component is
 * resolved with lstat inside the root, symlinks met on the way are followed only within the
 * root (an absolute target restarts at the root, `..` stops at it), and the final component is
 * never followed. Everything `apply.ts` writes goes through here.
 *
 * @example
 * ```ts
 * import { ChrootDir } from "./chroot.ts";
 * const root = new ChrootDir("/mnt/thinimage-layer");
 * const parent = root.resolveDir(["etc"], { create: true }); // "/mnt/thinimage-layer/etc"
 * root.lookup("etc/passwd"); // "file" | "directory" | "missing"
 * ```
 * @module
 */
import { InvalidInputError } from "../errors.ts";

/** Symlinks followed while resolving one path before giving up, as the kernel's ELOOP does. */
const MAX_LINKS = 40;

/** A directory whose paths resolve as if it were `/`. */
export class ChrootDir {
  /** Absolute, symlink-free path of the root. */
  readonly root: string;
  /** Parent path (logical, "a/b") -> resolved host path; dropped whenever anything is removed. */
  readonly #dirs = new Map<string, string>();
  /** Host paths of the symlinks the resolutions in `#dirs` went through. */
  readonly #followed = new Set<string>();

  constructor(dir: string) {
    this.root = Deno.realPathSync(dir);
    if (!Deno.statSync(this.root).isDirectory) {
      throw new Deno.errors.NotADirectory(`${dir} is not a directory`); // the caller's mistake, not the blob's
    }
  }

  /**
   * The host path of directory `comps` (components relative to the root). Missing components
   * are created (mode 0755, as tar does for parents the archive does not list) when `create`,
   * otherwise the answer is null. A component that is neither a directory nor a symlink to one
   * is refused.
   */
  resolveDir(comps: readonly string[], opts: { create: boolean }): string | null {
    if (comps.length === 0) return this.root;
    const key = comps.join("/");
    const hit = this.#dirs.get(key);
    if (hit !== undefined) return hit;
    // Resolve the parent (usually cached), then step into the last component from there.
    const parent = this.resolveDir(comps.slice(0, -1), opts);
    if (parent === null) return null;
    const stack = parent === this.root ? [] : parent.slice(this.root.length + 1).split("/");
    const queue = [comps[comps.length - 1]];
    let links = 0;
    while (queue.length) {
      const c = queue.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        stack.pop(); // clamped: ".." at the root stays at the root
        continue;
      }
      const host = this.#host([...stack, c]);
      let st: Deno.FileInfo;
      try {
        st = Deno.lstatSync(host);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        if (!opts.create) return null;
        Deno.mkdirSync(host, { mode: 0o755 });
        stack.push(c);
        continue;
      }
      if (st.isSymlink) {
        if (++links > MAX_LINKS) {
          throw new InvalidInputError(
            `'${key}': more than ${MAX_LINKS} symlinks while resolving (a loop?)`,
          );
        }
        this.#followed.add(host);
        const target = Deno.readLinkSync(host);
        if (target.startsWith("/")) stack.length = 0;
        queue.unshift(...target.split("/"));
        continue;
      }
      if (!st.isDirectory) {
        throw new InvalidInputError(
          `'${key}': component '${[...stack, c].join("/")}' is not a directory`,
        );
      }
      stack.push(c);
    }
    const out = this.#host(stack);
    this.#dirs.set(key, out);
    return out;
  }

  /**
   * Record that logical directory `path` is the real directory `host` (just created by the
   * caller inside the root), sparing a lookup for each entry beneath it.
   */
  knownDir(path: string, host: string): void {
    this.#dirs.set(path, host);
  }

  /** Split `path` into its parent's host path and its last component (null if parent missing). */
  locate(path: string, opts: { create: boolean }): { parent: string; name: string } | null {
    const slash = path.lastIndexOf("/");
    const name = path.slice(slash + 1);
    if (slash < 0) return { parent: this.root, name };
    // Most entries share a parent already resolved: look it up before splitting anything.
    const parent = this.#dirs.get(path.slice(0, slash)) ??
      this.resolveDir(path.slice(0, slash).split("/"), opts);
    return parent === null ? null : { parent, name };
  }

  /** What is at `path` (its last component not followed), without changing anything. */
  lookup(path: string): "file" | "directory" | "missing" {
    if (path === "") return "directory";
    const loc = this.locate(path, { create: false });
    if (!loc) return "missing";
    try {
      return Deno.lstatSync(`${loc.parent}/${loc.name}`).isDirectory ? "directory" : "file";
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return "missing";
      throw err;
    }
  }

  /** Forget resolved directories: call after removing or replacing a directory. */
  invalidate(): void {
    this.#dirs.clear();
    this.#followed.clear();
  }

  /**
   * Call after replacing or removing a file or symlink at `host` (a rename does not say which):
   * resolutions that went through a symlink there are forgotten.
   */
  replaced(host: string): void {
    if (this.#followed.has(host)) this.invalidate();
  }

  #host(stack: readonly string[]): string {
    return stack.length ? `${this.root}/${stack.join("/")}` : this.root;
  }
}
