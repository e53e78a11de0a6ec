// The commands as a user runs them, with the permissions of the `thinimage` task in deno.json.
import { assert, assertEquals } from "../../helpers/assert.ts";
import { join } from "node:path";
import { openStore } from "../../../src/store/db.ts";
import { StateDir } from "../../../src/state_dir.ts";
import { openPool, removePool } from "../../../src/devmapper/pool.ts";
import { ThinPool } from "../../../src/devmapper/thin.ts";
import { Dmsetup } from "../../../src/devmapper/dmsetup.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
// The thinimage task's own flags, run with `deno run` (`deno task` costs seconds more per start
// under emulation).
const TASK = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks.thinimage.split(" ");

async function thinimage(dir: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...TASK.slice(1), "--state-dir", dir, "--json", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return { code: out.code, doc: JSON.parse(text), stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("pool init, pool status and status, through the CLI; status reports a difference", async () => {
  const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
  const name = `thinimage-cli-${Deno.pid}`;
  const store = openStore(join(dir, "thinimage.db"));
  try {
    const init = await thinimage(dir, "pool", "init", "--name", name, "--data-size", "64M");
    assertEquals(init.code, 0, init.stderr);
    assertEquals([init.doc.pool.name, init.doc.status.healthy], [name, true]);
    assert(init.doc.status.errorIfNoSpace);
    const st = await thinimage(dir, "pool", "status");
    assertEquals([st.code, st.doc.name, st.doc.dataTotalBytes], [0, name, 64 * 2 ** 20]);
    const clean = await thinimage(dir, "status");
    assertEquals([clean.code, clean.doc.ok, clean.doc.pools[0].differences], [0, true, []]);

    const thin = new ThinPool(store, await openPool(store, name), new StateDir(dir).deviceHost());
    await thin.createThin(`${name}-x`, 2 ** 20);
    await thin.activate(`${name}-x`);
    await new Dmsetup().remove(`${name}-x`); // behind thinimage's back
    const drift = await thinimage(dir, "status");
    assertEquals(drift.code, 1);
    assertEquals(drift.doc.pools[0].differences.map((d: { action: string }) => d.action), [
      "reactivated",
    ]);
    await thin.reconcile();
    assertEquals(await thin.survey(), []);
    await thin.remove(`${name}-x`);
  } finally {
    await removePool(store, name, { deleteFiles: true }).catch(() => {});
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
