import { assert, assertEquals, assertNotEquals, assertRejects } from "../../helpers/assert.ts";
import { join } from "node:path";
import { adoptPool, initPool, listThinIds, poolStatus } from "../../../src/devmapper/pool.ts";
import { findLoops } from "../../../src/devmapper/loop.ts";
import { Dmsetup } from "../../../src/devmapper/dmsetup.ts";
import { ThinPool } from "../../../src/devmapper/thin.ts";
import { mountPrivate, syncFilesystem, unmount } from "../../../src/devmapper/fs.ts";
import { openStore } from "../../../src/store/db.ts";
import { StateDir } from "../../../src/state_dir.ts";
import { InvalidInputError } from "../../../src/errors.ts";
import { sh, withPool } from "./helpers.ts";

const MiB = 2 ** 20;

Deno.test("pool init is idempotent: same loop devices, same table, error_if_no_space set", async () => {
  const f = await withPool();
  try {
    const again = await initPool(new StateDir(f.dir).pool, f.store, { name: f.pool.name }, f.dm);
    assertEquals([again.metaDev, again.dataDev], [f.pool.metaDev, f.pool.dataDev]);
    assertEquals((await findLoops(f.pool.metaFile!)).length, 1);
    assertEquals((await findLoops(f.pool.dataFile!)).length, 1);
    const st = await poolStatus(f.pool.name, f.dm);
    assert(st.errorIfNoSpace && st.healthy);
    assertEquals(st.dataTotalBytes, 256 * MiB);
    // A metadata snapshot left held by a killed run does not stop the next id listing.
    await f.dm.message(f.pool.name, "reserve_metadata_snap");
    assertEquals(await listThinIds(f.pool, f.dm), []);
    assertEquals((await poolStatus(f.pool.name, f.dm)).heldMetadataRoot, undefined);
    await assertRejects(
      () =>
        initPool(
          new StateDir(f.dir).pool,
          f.store,
          { name: f.pool.name, dataSize: 512 * MiB },
          f.dm,
        ),
      InvalidInputError,
      "exists with",
    );
  } finally {
    await f.teardown();
  }
});

Deno.test("pool init refuses (65) a same-named device with another table, leaking no loop device", async () => {
  const dm = new Dmsetup();
  const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
  const store = openStore(join(dir, "thinimage.db"));
  const name = `thinimage-other-${Deno.pid}`;
  await dm.create(name, "0 2048 error");
  try {
    const err = await assertRejects(
      () => initPool(new StateDir(dir).pool, store, { name, dataSize: 64 * MiB }, dm),
      InvalidInputError,
    );
    assertEquals(err.exitCode, 65);
    assert(err.message.includes("0 2048 error"), err.message);
    assertEquals(await findLoops(join(dir, "pool", `${name}.data`)), []);
    assertEquals(await findLoops(join(dir, "pool", `${name}.meta`)), []);
  } finally {
    await dm.remove(name);
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adopting a pool made by the reference commands: its ids are left alone", async () => {
  const dm = new Dmsetup();
  const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
  const store = openStore(join(dir, "thinimage.db"));
  await sh("/usr/bin/fallocate", "-l", "1M", `${dir}/meta`);
  await sh("/usr/bin/fallocate", "-l", "2G", `${dir}/data`);
  const meta = (await sh("/usr/sbin/losetup", "-f", "--show", `${dir}/meta`)).trim();
  const data = (await sh("/usr/sbin/losetup", "-f", "--show", `${dir}/data`)).trim();
  await sh(
    "/usr/sbin/dmsetup",
    "create",
    "--verifyudev",
    "pool",
    "--table",
    `0 4194304 thin-pool ${meta} ${data} 2048 32768`,
  );
  try {
    await dm.message("pool", "create_thin 1"); // someone else's device
    const pool = await adoptPool(store, "pool", dm);
    assertEquals([pool.metaDev, pool.dataDev, pool.blockSectors, pool.adopted], [
      meta,
      data,
      2048,
      true,
    ]);
    assertEquals((await adoptPool(store, "pool", dm)).name, "pool", "adopting again is fine");
    const thin = new ThinPool(store, pool, new StateDir(dir).deviceHost(), dm);
    const name = `thinimage-adopted-${Deno.pid}`;
    const d = await thin.createThin(name, 64 * MiB);
    assertNotEquals(d.thinId, 1);
    await thin.formatOnce(name);
    const mnt = join(dir, "mnt");
    await mountPrivate(await thin.activate(name), mnt);
    await Deno.writeTextFile(join(mnt, "x"), "adopted");
    await syncFilesystem(mnt, "pool", dm);
    await unmount(mnt);
    assertEquals(await thin.survey(), []);
    await thin.remove(name);
    assertEquals(await listThinIds(pool, dm), [1], "the foreign id is untouched");
  } finally {
    await dm.remove("pool");
    await sh("/usr/sbin/losetup", "-d", meta, data);
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
