/**
 * POSIX `join` and `dirname`, as `node:path` has them, for the modules every device command
 * loads: importing any of Deno's Node modules but `node:sqlite` loads its Node compatibility
 * layer, which on the host costs more CPU than all of a warm activation's own modules.
 *
 * @example
 * ```ts
 * import { dirname, join } from "./path.ts";
 * join("/var/lib/thinimage/", "pool", "a.data"); // "/var/lib/thinimage/pool/a.data"
 * dirname("/var/lib/thinimage/mnt/x"); // "/var/lib/thinimage/mnt"
 * ```
 * @module
 */

/** The parts joined with `/` and normalized; "." when nothing is left. */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/** `.` and empty segments dropped, `..` applied where it can be, a trailing `/` kept. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(seg);
  }
  const body = out.join("/");
  if (absolute) return `/${body}${body && path.endsWith("/") ? "/" : ""}`;
  if (body === "") return path.endsWith("/") ? "./" : ".";
  return path.endsWith("/") ? `${body}/` : body;
}

/** The path without its last segment (trailing slashes ignored), exactly as node's. */
export function dirname(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  let end = -1;
  let inTrailingSlashes = true;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] === "/") {
      if (!inTrailingSlashes) {
        end = i;
        break;
      }
    } else {
      inTrailingSlashes = false;
    }
  }
  if (end === -1) return rooted ? "/" : ".";
  if (rooted && end === 1) return "//";
  return path.slice(0, end);
}
