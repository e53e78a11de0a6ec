import { assertEquals } from "../helpers/assert.ts";
import { isMountPoint } from "../../src/devmapper/fs.ts";

Deno.test("isMountPoint: a mounted filesystem is one, a plain or missing directory is not", async () => {
  // /proc is always a filesystem of its own; a fresh temporary directory never is.
  assertEquals(await isMountPoint("/proc"), true);
  const dir = await Deno.makeTempDir();
  try {
    assertEquals(await isMountPoint(dir), false);
    assertEquals(await isMountPoint(`${dir}/missing`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
