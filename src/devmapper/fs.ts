/**
 * Filesystems on thin devices: mkfs, private mounts, and the sync that tells whether the data
 * really reached the pool.
 *
 * With `error_if_no_space`, a full pool fails writeback while `write`, `close` and even
 * `umount` report success; only `syncfs` returns the error. So a layer counts as complete only
 * after {@linkcode syncFilesystem} succeeded and the pool still reports no trouble.
 *
 * @example
 * ```ts
 * import { mkfsExt4, mountPrivate, syncFilesystem, unmount } from "./fs.ts";
 * await mkfsExt4("/dev/mapper/thinimage-base");
 * await mountPrivate("/dev/mapper/thinimage-base", "/var/lib/thinimage/mnt/base");
 * await syncFilesystem("/var/lib/thinimage/mnt/base", "thinimage-pool");
 * await unmount("/var/lib/thinimage/mnt/base");
 * ```
 * @module
 */
import { TemporaryError, ThinimageError } from "../errors.ts";
import { Dmsetup } from "./dmsetup.ts";
import { poolStatus, type PoolStatusReport } from "./pool.ts";
import { dirname } from "../path.ts";
import { runTool, type ToolPath, TOOLS } from "./tools.ts";

async function must(tool: ToolPath, args: string[], what: string): Promise<string> {
  const out = await runTool(tool, args);
  if (out.code !== 0) {
    throw new ThinimageError(`${what}: ${out.stderr.trim() || `exit status ${out.code}`}`, {
      details: { argv: out.argv, stderr: out.stderr.trim(), status: out.code },
    });
  }
  return out.stdout;
}

/**
 * Make an ext4 filesystem on `dev`, with every table written now (no lazy init: a background
 * writer would race the snapshots) and no discard (a thin device is already zero).
 *
 * `prezeroed` (a thin device in a pool that zeroes new blocks, i.e. without
 * `skip_block_zeroing`): every block not yet written reads as zeros, so mke2fs may skip
 * writing zeros to the inode tables and the journal and mark them zeroed
 * (`assume_storage_prezeroed`). The result is the same filesystem, without the lazy-init
 * thread, but it provisions only the blocks that hold metadata: on an 8 GiB device that is
 * a few MiB of pool data instead of about 200 MiB, which every image would otherwise carry.
 */
export async function mkfsExt4(dev: string, opts: { prezeroed?: boolean } = {}): Promise<void> {
  const ext = ["nodiscard", "lazy_itable_init=0", "lazy_journal_init=0", "packed_meta_blocks=1"];
  if (opts.prezeroed) ext.push("assume_storage_prezeroed=1");
  await must(
    TOOLS.mkfsExt4,
    ["-q", "-F", "-O", MKFS_FEATURES, "-E", ext.join(","), dev],
    `mkfs.ext4 ${dev}`,
  );
}

/**
 * Features that cost pool blocks in every image for no use here. Measured on an 8 GiB thin
 * volume with 64 KiB pool blocks: the resize inode's reserved GDT
 * blocks, copied into every backup group, provision 64 blocks (4 MiB) of the 81 mkfs wrote;
 * without it and with two backup superblocks (`sparse_super2`) instead of one per sparse
 * group, and with the metadata packed at the start (`packed_meta_blocks`, so the few blocks a
 * layer's metadata touches share pool blocks), mkfs provisions 7. A volume can still be
 * grown online: the kernel resizes without the resize inode (meta_bg).
 */
const MKFS_FEATURES = "^resize_inode,sparse_super2";

/**
 * Mount `dev` (ext4) on `dir` with nosuid,nodev,noexec, as a private mount so it never
 * propagates into other mount namespaces. Creates `dir`. Idempotent: a `dir` already holding
 * `dev` is left as it is.
 */
export async function mountPrivate(
  dev: string,
  dir: string,
  opts: { readOnly?: boolean } = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  if (await isMountPoint(dir)) {
    const src = await mountedSource(dir);
    if (src === dev) return;
    throw new ThinimageError(`${dir} already has ${src} mounted on it, not ${dev}`);
  }
  const o = ["nosuid", "nodev", "noexec", opts.readOnly ? "ro" : "rw"];
  await must(
    TOOLS.mount,
    ["-t", "ext4", "-o", o.join(","), "--make-private", dev, dir],
    `mount ${dev} on ${dir}`,
  );
}

/** Unmount `dir`; nothing mounted there is success. */
export async function unmount(dir: string): Promise<void> {
  if (!(await isMountPoint(dir))) return;
  await must(TOOLS.umount, [dir], `umount ${dir}`);
}

/**
 * True when a filesystem other than its parent's is mounted on `dir`: two `stat`s where
 * `findmnt` would cost a process (seconds under emulation), and /proc/self/mountinfo needs
 * Deno's --allow-all. A bind mount of the parent's own filesystem is not seen; this project
 * mounts only thin devices. False when `dir` does not exist.
 */
export async function isMountPoint(dir: string): Promise<boolean> {
  try {
    const [here, parent] = await Promise.all([Deno.stat(dir), Deno.stat(dirname(dir))]);
    return here.dev !== parent.dev;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Flush the filesystem holding `dir` (`sync -f`, i.e. syncfs) and then check the pool: a
 * failed sync, or a pool out of space or in trouble afterwards, throws. Out of space is a
 * TemporaryError (exit 75): after cleanup the same work fits. Returns the pool's status.
 * `blockSectors`, the pool's block size when known, saves a `dmsetup table`.
 */
export async function syncFilesystem(
  dir: string,
  pool: string,
  dm = new Dmsetup(),
  blockSectors?: number,
): Promise<PoolStatusReport> {
  const out = await runTool(TOOLS.sync, ["-f", dir]);
  const st = await poolStatus(pool, dm, blockSectors);
  if (st.outOfDataSpace || (out.code !== 0 && /No space left/.test(out.stderr))) {
    throw new TemporaryError(
      `pool ${pool} ran out of data space while writing ${dir} (${st.usedDataBlocks}/${st.totalDataBlocks} blocks used); the data there is incomplete`,
      { details: { pool, usedDataBlocks: st.usedDataBlocks, totalDataBlocks: st.totalDataBlocks } },
    );
  }
  if (out.code !== 0) throw new ThinimageError(`sync -f ${dir}: ${out.stderr.trim()}`);
  if (!st.healthy) {
    throw new ThinimageError(
      `pool ${pool} is unhealthy after syncing ${dir}: ${st.problems.join(", ")}`,
    );
  }
  return st;
}

/** What is mounted on exactly `dir` (the top mount), or undefined. */
export async function mountedSource(dir: string): Promise<string | undefined> {
  let real: string;
  try {
    real = await Deno.realPath(dir);
  } catch {
    return undefined;
  }
  const out = await runTool(TOOLS.findmnt, ["-n", "-r", "-o", "SOURCE", "--mountpoint", real]);
  const lines = out.stdout.trim().split("\n").filter((l) => l !== "");
  if (out.code !== 0 || lines.length === 0) return undefined;
  return lines[lines.length - 1].replace(
    /\\x([0-9a-f]{2})/gi,
    (_, h) => String.fromCharCode(parseInt(h, 16)),
  );
}
