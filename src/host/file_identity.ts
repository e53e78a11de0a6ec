/**
 * A file's identity: what changes whenever its bytes do. The inode and size, and the change
 * time, which every write moves and no caller can set (only the system clock could). A blob
 * whose identity is the one it had when its digest was checked still holds those bytes.
 *
 * @example
 * ```ts
 * import { fileIdentity } from "./file_identity.ts";
 * fileIdentity(Deno.statSync("layer.tar")); // "2049:1234:4096:1700000000000:1700000000000"
 * ```
 * @module
 */

/** The identity of a file from its stat. */
export function fileIdentity(st: Deno.FileInfo): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
}
