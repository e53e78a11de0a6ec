// The device operations of a process holding the ffi grant go to the kernel as ioctls
// (src/devmapper/dm_control.ts); here against a real pool, checked by `dmsetup` itself: the
// same tables and status lines, the same typed errors, the node made, and a failed create
// leaving nothing behind.
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  DmError,
  DmExistsError,
  DmNoDataError,
  DmNoSuchDeviceError,
  Dmsetup,
} from "../../../src/devmapper/dmsetup.ts";
import { formatThinTable } from "../../../src/devmapper/parse.ts";
import { sh, withPool } from "./helpers.ts";

/** `stat -L` of the node as "TYPE MAJOR:MINOR" (decimal), or "missing". */
async function node(name: string): Promise<string> {
  const out = await sh(
    "/usr/bin/bash",
    "-c",
    `p=/dev/mapper/${name}; [ -e "$p" ] || { echo missing; exit 0; }; ` +
      `[ -b "$p" ] && t=block || t=other; ` +
      `echo "$t $((16#$(stat -L -c %t "$p"))):$((16#$(stat -L -c %T "$p")))"`,
  );
  return out.trim();
}

/** What the program says, to check the ioctls against. */
const tool = new Dmsetup({ backend: "dmsetup" });

Deno.test("ioctl backend: create, message, table, status and number agree with dmsetup's", async () => {
  const f = await withPool();
  const name = `${f.pool.name}-io`;
  try {
    assert(f.dm.usesIoctl, "the device tests hold the ffi grant: ioctls, not dmsetup");
    assert(!tool.usesIoctl);
    const poolDev = await f.dm.deviceNumber(f.pool.name);
    assertEquals(poolDev, await tool.deviceNumber(f.pool.name));
    assertEquals(await f.dm.table(f.pool.name), await tool.table(f.pool.name));
    assertEquals(await f.dm.status(f.pool.name), await tool.status(f.pool.name));

    await f.dm.createThin(f.pool.name, 1);
    const err = await assertRejects(() => f.dm.createThin(f.pool.name, 1), DmExistsError);
    assertEquals(
      err.message,
      `message ${f.pool.name} 0 create_thin 1: device-mapper: message ioctl on ${f.pool.name} failed: File exists`,
    );
    await f.dm.createSnap(f.pool.name, 2, 1);
    await assertRejects(() => f.dm.createSnap(f.pool.name, 3, 9), DmNoDataError);

    const table = { sectors: 8192, poolDev, thinId: 2 };
    await f.dm.createThinDevice(name, table);
    assertEquals(await sh("/usr/sbin/dmsetup", "table", name), formatThinTable(table) + "\n");
    assertEquals(await f.dm.table(name), formatThinTable(table));
    assertEquals(await f.dm.status(name), await tool.status(name));
    const dev = await f.dm.deviceNumber(name);
    assertEquals(dev, await tool.deviceNumber(name));
    assertEquals(await node(name), `block ${dev}`, "the node, made without udev");
    await f.dm.ensureNode(name);
    assertEquals(await node(name), `block ${dev}`);

    // A name in use: the kernel answers EBUSY, which means "exists" here as from dmsetup.
    await assertRejects(() => f.dm.createThinDevice(name, table), DmExistsError, "create");
    assertEquals(await f.dm.table(name), formatThinTable(table), "the live device untouched");

    await f.dm.remove(name); // dmsetup remove --verifyudev: the node goes with it
    assertEquals(await node(name), "missing");
    assertEquals(await f.dm.table(name), undefined);
    assertEquals(await f.dm.status(name), undefined);
    await assertRejects(() => f.dm.deviceNumber(name), DmNoSuchDeviceError);
    await assertRejects(() => f.dm.message(name, "x"), DmNoSuchDeviceError);
    await f.dm.deleteThin(f.pool.name, 2);
    await f.dm.deleteThin(f.pool.name, 1);
  } finally {
    if (await tool.table(name) !== undefined) await tool.remove(name);
    await f.teardown();
  }
});

Deno.test("ioctl backend: a create whose load fails removes the half-made device", async () => {
  const f = await withPool();
  const name = `${f.pool.name}-half`;
  try {
    const poolDev = await f.dm.deviceNumber(f.pool.name);
    // Thin id 7 does not exist in the pool: the thin target refuses to load (No data available).
    const err = await assertRejects(
      () => f.dm.createThinDevice(name, { sectors: 8192, poolDev, thinId: 7 }),
      DmNoDataError,
    );
    assert(err.message.includes(`reload ioctl on ${name} failed`), err.message);
    assertEquals(await tool.table(name), undefined, "no device left");
    assertEquals((await tool.ls()).some((d) => d.name === name), false);
    assertEquals(await node(name), "missing");
    // A target the kernel does not know: a plain DmError, nothing left either.
    const other = await assertRejects(() => f.dm.create(name, "0 8 no-such-target"), DmError);
    assert(!(other instanceof DmExistsError) && !(other instanceof DmNoSuchDeviceError));
    assertEquals(await tool.table(name), undefined);
    // Then the name is free for a good table.
    await f.dm.create(name, "0 8 error");
    assertEquals(await tool.table(name), "0 8 error");
    await f.dm.remove(name);
  } finally {
    if (await tool.table(name) !== undefined) await tool.remove(name);
    await f.teardown();
  }
});

Deno.test("ioctl backend: a stale node of another device under the name is replaced", async () => {
  const name = `thinimage-stale-${Deno.pid}`;
  // A block node left for a device number nothing uses, as a crash between remove and unlink
  // would leave it.
  await sh("/usr/bin/bash", "-c", `mknod /dev/mapper/${name} b 1 250`);
  const dm = new Dmsetup();
  try {
    await dm.create(name, "0 8 error");
    const dev = await dm.deviceNumber(name);
    assertEquals(await node(name), `block ${dev}`);
  } finally {
    if (await tool.table(name) !== undefined) await tool.remove(name);
    await sh("/usr/bin/bash", "-c", `rm -f /dev/mapper/${name}`);
  }
});
