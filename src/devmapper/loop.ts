/**
 * Loop devices over the pool's backing files, found again rather than made twice: `losetup -f`
 * on every retry would leak a loop device each time.
 *
 * @example
 * ```ts
 * import { attachLoop, detachLoop } from "./loop.ts";
 * const dev = await attachLoop("/var/lib/thinimage/pool/thinimage-pool.data"); // "/dev/loop3"
 * await detachLoop(dev);
 * ```
 * @module
 */
import { ThinimageError } from "../errors.ts";
import { parseLosetupJ } from "./parse.ts";
import { runTool, TOOLS } from "./tools.ts";

/** The loop devices backed by `file` (usually none or one). */
export async function findLoops(file: string): Promise<string[]> {
  const out = await runTool(TOOLS.losetup, ["-j", file]);
  if (out.code !== 0) throw new ThinimageError(`losetup -j ${file}: ${out.stderr.trim()}`);
  return parseLosetupJ(out.stdout);
}

/** The loop device backed by `file`, attaching one only when there is none. */
export async function attachLoop(file: string): Promise<string> {
  const [existing] = await findLoops(file);
  if (existing) return existing;
  // --nooverlap: a concurrent attach of the same file gets the same device back.
  const out = await runTool(TOOLS.losetup, ["--find", "--show", "--nooverlap", file]);
  const dev = out.stdout.trim();
  if (out.code !== 0 || !/^\/dev\/loop\d+$/.test(dev)) {
    throw new ThinimageError(`cannot attach a loop device to ${file}: ${out.stderr.trim()}`);
  }
  return dev;
}

/** Detach a loop device (it goes once its last user closes it). */
export async function detachLoop(dev: string): Promise<void> {
  const out = await runTool(TOOLS.losetup, ["-d", dev]);
  if (out.code !== 0) throw new ThinimageError(`losetup -d ${dev}: ${out.stderr.trim()}`);
}

/** `MAJOR:MINOR` of a block device node, as dm tables print it. */
export async function deviceNumber(path: string): Promise<string> {
  const out = await runTool(TOOLS.lsblk, ["-n", "-r", "-d", "-o", "MAJ:MIN", path]);
  const num = out.stdout.trim();
  if (out.code !== 0 || !/^\d+:\d+$/.test(num)) {
    throw new ThinimageError(`${path} is not a block device: ${out.stderr.trim() || num}`);
  }
  return num;
}

/** The `/dev` paths of block devices `MAJOR:MINOR`, in the same order (one lsblk run). */
export async function devicePaths(majMins: string[]): Promise<string[]> {
  const out = await runTool(TOOLS.lsblk, ["-n", "-r", "-o", "PATH,MAJ:MIN"]);
  const byNumber = new Map<string, string>();
  for (const line of out.stdout.split("\n")) {
    const [path, num] = line.trim().split(" ");
    if (path && num) byNumber.set(num, path);
  }
  return majMins.map((majMin) => {
    const path = byNumber.get(majMin);
    if (path) return path;
    throw new ThinimageError(
      `no block device ${majMin} (lsblk: ${out.stderr.trim() || "not listed"})`,
    );
  });
}

/** `dev` as a path: itself, or the node of a `MAJOR:MINOR` (one `lsblk`). */
export async function devicePath(dev: string): Promise<string> {
  return /^\d+:\d+$/.test(dev) ? (await devicePaths([dev]))[0] : dev;
}
