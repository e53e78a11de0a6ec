/**
 * Device-mapper operation costs on a real kernel. Run inside the VM:
 *   bash scripts/vm.sh -- deno run -A --no-check bench/devmapper_ops.ts [ROUNDS]
 * Prints milliseconds per operation (median of ROUNDS, default 5).
 * @module
 */
import { join } from "node:path";
import { openStore } from "../src/store/db.ts";
import { initPool, listThinIds, removePool } from "../src/devmapper/pool.ts";
import { Dmsetup } from "../src/devmapper/dmsetup.ts";
import { ThinPool } from "../src/devmapper/thin.ts";
import { StateDir } from "../src/state_dir.ts";
import { mkfsExt4 } from "../src/devmapper/fs.ts";
import { runTool, TOOLS } from "../src/devmapper/tools.ts";

const rounds = Number(Deno.args[0] ?? 5);
const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
const store = openStore(join(dir, "thinimage.db"));
const dm = new Dmsetup();
const times: Record<string, number[]> = {};
async function time<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  (times[what] ??= []).push(performance.now() - t0);
  return r;
}
const pool = await time(
  "initPool",
  () =>
    initPool(
      new StateDir(dir).pool,
      store,
      { name: "thinimage-bench", dataSize: 256 * 2 ** 20 },
      dm,
    ),
);
const thin = new ThinPool(store, pool, new StateDir(dir).deviceHost(), dm);
for (let i = 0; i < rounds; i++) {
  await time("spawn dmsetup version", () => runTool(TOOLS.dmsetup, ["version"]));
  await time("createThin", () => thin.createThin("thinimage-bench-a", 64 * 2 ** 20));
  const dev = await time("activate", () => thin.activate("thinimage-bench-a"));
  await time("mkfs.ext4 64 MiB", () => mkfsExt4(dev));
  await time(
    "createSnapshot (active origin)",
    () => thin.createSnapshot("thinimage-bench-b", "thinimage-bench-a"),
  );
  await time("guardFreeSpace", () => thin.guardFreeSpace());
  await time("listThinIds", () => listThinIds(pool, dm));
  await time("survey", () => thin.survey());
  await time("remove (snapshot)", () => thin.remove("thinimage-bench-b"));
  await time("remove (active)", () => thin.remove("thinimage-bench-a"));
}
await removePool(store, pool.name, { deleteFiles: true }, dm);
store.close();
await Deno.remove(dir, { recursive: true });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [what, xs] of Object.entries(times)) {
  console.log(`${what.padEnd(32)} ${median(xs).toFixed(0).padStart(6)} ms  (n=${xs.length})`);
}
