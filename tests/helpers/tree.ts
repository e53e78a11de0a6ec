/**
 * Reference extraction and tree comparison for the end-to-end tests: an image's layers
 * extracted by GNU tar (not by thinimage's own code) with OCI whiteouts applied by hand, and
 * a walk that describes a tree (names, types, modes, owners, link targets, content digests)
 * so two trees can be compared entry by entry.
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";

const TAR = "/usr/bin/tar";

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Extract `layers` (tar files, in order) into `dir` as OCI says: before a layer's own entries,
 * each of its opaque markers empties its directory and each whiteout removes its target (both
 * act on lower layers only); marker entries themselves are not extracted.
 */
export async function referenceExtract(layers: string[], dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const layer of layers) {
    const names = (await run(TAR, ["-tf", layer])).split("\n").filter(Boolean)
      .map((n) => n.replace(/^\.\//, "").replace(/\/$/, ""));
    for (const n of names) {
      const slash = n.lastIndexOf("/");
      const parent = slash < 0 ? "" : n.slice(0, slash);
      const base = n.slice(slash + 1);
      if (base === ".wh..wh..opq") {
        const d = join(dir, parent);
        let kids: string[] = [];
        try {
          kids = readdirSync(d);
        } catch { /* nothing below */ }
        for (const k of kids) rmSync(join(d, k), { recursive: true, force: true });
      } else if (base.startsWith(".wh.")) {
        rmSync(join(dir, parent, base.slice(4)), { recursive: true, force: true });
      }
    }
    await run(TAR, [
      "-xf",
      layer,
      "-C",
      dir,
      "--numeric-owner",
      "--same-owner",
      "--same-permissions",
      "--wildcards",
      "--exclude=.wh.*",
      "--exclude=*/.wh.*",
    ]);
  }
}

/** One entry of a tree, as compared. */
export interface TreeEntry {
  path: string;
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  target?: string;
  sha256?: string;
  size?: number;
  /** Seconds, for regular files. */
  mtime?: number;
}

/** Describe every entry below `root` (sorted by path; `lost+found` left out: mkfs makes it). */
export function describeTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (rel: string) => {
    const names = readdirSync(join(root, rel)).sort();
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      if (p === "lost+found") continue;
      const full = join(root, p);
      const st = lstatSync(full);
      const e: TreeEntry = {
        path: p,
        type: st.isFile()
          ? "file"
          : st.isDirectory()
          ? "dir"
          : st.isSymbolicLink()
          ? "symlink"
          : "other",
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
      };
      if (e.type === "symlink") {
        e.target = readlinkSync(full);
        delete (e as Partial<TreeEntry>).mode; // symlink modes are not meaningful on Linux
      }
      if (e.type === "file") {
        e.size = st.size;
        e.mtime = Math.floor(st.mtimeMs / 1000);
        e.sha256 = createHash("sha256").update(readFileSync(full)).digest("hex");
      }
      out.push(e);
      if (e.type === "dir") walk(p);
    }
  };
  walk("");
  return out;
}

/** The differences between two tree descriptions, at most `max` of them, in words. */
export function diffTrees(a: TreeEntry[], b: TreeEntry[], max = 20): string[] {
  const ma = new Map(a.map((e) => [e.path, e]));
  const mb = new Map(b.map((e) => [e.path, e]));
  const diffs: string[] = [];
  for (const [p, e] of ma) {
    const f = mb.get(p);
    if (!f) diffs.push(`only in first: ${p}`);
    else if (JSON.stringify(e) !== JSON.stringify(f)) {
      diffs.push(`differs: ${p}: ${JSON.stringify(e)} vs ${JSON.stringify(f)}`);
    }
    if (diffs.length >= max) return diffs;
  }
  for (const p of mb.keys()) {
    if (!ma.has(p)) diffs.push(`only in second: ${p}`);
    if (diffs.length >= max) break;
  }
  return diffs;
}
