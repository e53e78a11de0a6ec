/**
 * The host tools the device-mapper code runs, by absolute path, and the one way to run them.
 *
 * Absolute paths (Debian 12, merged /usr) keep `PATH` out of the trust chain and match the
 * `--allow-run` list of the `thinimage` task in deno.json, which must list exactly these.
 *
 * @example
 * ```ts
 * import { runTool, TOOLS } from "./tools.ts";
 * const out = await runTool(TOOLS.dmsetup, ["version"]);
 * if (out.code === 0) console.log(out.stdout);
 * ```
 * @module
 */

/** Every external program this module family runs. */
export const TOOLS = {
  dmsetup: "/usr/sbin/dmsetup",
  losetup: "/usr/sbin/losetup",
  mount: "/usr/bin/mount",
  umount: "/usr/bin/umount",
  mkfsExt4: "/usr/sbin/mkfs.ext4",
  thinLs: "/usr/sbin/thin_ls",
  sync: "/usr/bin/sync",
  // Deno treats every /proc, /sys and /dev/mapper path as needing --allow-all, so device
  // numbers and mount points are read through these two instead.
  lsblk: "/usr/bin/lsblk",
  findmnt: "/usr/bin/findmnt",
} as const;

/** One of {@linkcode TOOLS}' paths. */
export type ToolPath = typeof TOOLS[keyof typeof TOOLS];

/** What a finished tool run left behind. */
export interface ToolOutput {
  /** The full argv, program first: error messages quote it. */
  argv: string[];
  /** Exit status (a signal shows as 128 + its number). */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `tool` with `args` (argv only, never a shell), wait, and capture its output.
 * Never throws for a non-zero exit: callers turn `stderr` into typed errors.
 *
 * @example
 * ```ts
 * import { runTool, TOOLS } from "./tools.ts";
 * const { code, stderr } = await runTool(TOOLS.losetup, ["-j", "/var/lib/thinimage/pool/data"]);
 * ```
 */
export async function runTool(
  tool: ToolPath,
  args: string[],
  opts: { env?: Record<string, string> } = {},
): Promise<ToolOutput> {
  const out = await new Deno.Command(tool, {
    args,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    argv: [tool, ...args],
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
