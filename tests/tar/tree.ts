/**
 * A directory tree as comparable data: one line per entry with its type, mode, owner, size,
 * link target and content hash. Used to compare our extraction with GNU tar's, and to prove
 * that canaries outside the target directory were not touched.
 *
 * @example
 * ```ts
 * import { snapshotTree } from "./tree.ts";
 * const before = snapshotTree("/tmp/canary", { mtimes: true });
 * ```
 * @module
 */
import { createHash } from "node:crypto";

/** Describe every entry under `root` (not `root` itself unless `withRoot`), sorted by path. */
export function snapshotTree(
  root: string,
  opts: { mtimes?: boolean | "exact"; withRoot?: boolean; inodes?: boolean } = {},
): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const host = rel ? `${root}/${rel}` : root;
    const st = Deno.lstatSync(host);
    if (rel || opts.withRoot) out.push(describe(rel || ".", host, st, opts));
    if (st.isDirectory) {
      for (const e of [...Deno.readDirSync(host)].sort((a, b) => a.name < b.name ? -1 : 1)) {
        walk(rel ? `${rel}/${e.name}` : e.name);
      }
    }
  };
  walk("");
  return out;
}

function describe(
  rel: string,
  host: string,
  st: Deno.FileInfo,
  opts: { mtimes?: boolean | "exact"; inodes?: boolean },
): string {
  const type = st.isDirectory ? "dir" : st.isSymlink ? "symlink" : st.isFile ? "file" : "other";
  const parts = [rel, type, (st.mode! & 0o7777).toString(8), `${st.uid}:${st.gid}`];
  if (st.isSymlink) parts.push(`-> ${Deno.readLinkSync(host)}`);
  if (st.isFile) {
    parts.push(
      `${st.size}B`,
      createHash("sha256").update(Deno.readFileSync(host)).digest("hex").slice(0, 16),
    );
    parts.push(`nlink=${st.nlink}`);
  }
  // Seconds: pax sub-second times pass through a double, which may round the last digit.
  // Seconds by default: pax sub-second times pass through a double, which may round the last
  // digit; canaries compare in nanoseconds-as-ms ("exact").
  if (opts.mtimes === "exact") {
    parts.push(`mtime=${st.mtime!.getTime()} ctime=${st.ctime?.getTime()}`);
  } else if (opts.mtimes) parts.push(`mtime=${Math.floor(st.mtime!.getTime() / 1000)}`);
  if (opts.inodes) parts.push(`ino=${st.ino}`);
  return parts.join(" ");
}
