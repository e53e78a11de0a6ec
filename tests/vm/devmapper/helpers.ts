/**
 * Fixtures for the device tests (inside the VM only): a fresh state directory and loop-backed
 * pool per test, and a teardown that proves nothing was left behind.
 * @module
 */
import { assertEquals } from "../../helpers/assert.ts";
import { join } from "node:path";
import { openStore, type Store } from "../../../src/store/db.ts";
import { StateDir } from "../../../src/state_dir.ts";
import {
  initPool,
  type InitPoolOptions,
  listThinIds,
  type PoolInfo,
  removePool,
} from "../../../src/devmapper/pool.ts";
import { Dmsetup } from "../../../src/devmapper/dmsetup.ts";
import { ThinPool, type ThinPoolOptions } from "../../../src/devmapper/thin.ts";
import { findLoops } from "../../../src/devmapper/loop.ts";
import { unmount } from "../../../src/devmapper/fs.ts";

export interface PoolFixture {
  dir: string;
  store: Store;
  pool: PoolInfo;
  thin: ThinPool;
  dm: Dmsetup;
  /** Remove every device, the pool and its loop devices; then assert nothing is left. */
  teardown(): Promise<void>;
}

let counter = 0;

/** A pool `thinimage-tN` in a fresh state directory under /var/tmp (fallocate works there). */
export async function withPool(
  opts: InitPoolOptions = {},
  thinOpts: Partial<ThinPoolOptions> = {},
  dm = new Dmsetup({ attempts: 5, delayMs: 20 }),
): Promise<PoolFixture> {
  const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "thinimage-test-" });
  const store = openStore(join(dir, "thinimage.db"));
  const name = opts.name ?? `thinimage-t${Deno.pid}-${counter++}`;
  const state = new StateDir(dir);
  const pool = await initPool(state.pool, store, { dataSize: 256 * 2 ** 20, ...opts, name }, dm);
  const thin = new ThinPool(store, pool, { ...state.deviceHost(), ...thinOpts }, dm);
  return {
    dir,
    store,
    pool,
    thin,
    dm,
    async teardown() {
      for await (const e of Deno.readDir(dir)) {
        if (e.isDirectory && e.name.startsWith("mnt")) await unmount(join(dir, e.name));
      }
      for (const d of thin.list()) await thin.remove(d.name);
      assertEquals(await listThinIds(pool, dm), [], "thin ids left in the pool");
      await removePool(store, pool.name, { deleteFiles: true }, dm);
      const left = (await dm.ls()).filter((d) =>
        d.name.startsWith(pool.name) || d.name.includes(`-${name}-`)
      );
      assertEquals(left, [], "dm devices left");
      assertEquals(await findLoops(pool.metaFile!), [], "loop devices left");
      assertEquals(await findLoops(pool.dataFile!), [], "loop devices left");
      // findmnt, not /proc/self/mountinfo: Deno reads /proc only under --allow-all, and these
      // tests run with the product's flags.
      const mounts = await sh("/usr/bin/findmnt", "-rn", "-o", "TARGET");
      assertEquals(mounts.includes(dir), false, "mounts left under " + dir);
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Run a tool by absolute path; return stdout, throwing with stderr on failure. */
export async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}
