/**
 * A process that dies by SIGKILL at one crash point of one dm operation, for crash_test.ts.
 * Usage: crash_child.ts STATE_DIR POOL OP POINT NAME [ORIGIN]
 *   OP: create_thin | create_snap | delete; POINT: afterIntent | afterMessage
 * Exits 3 if it was not killed (the crash point was never reached).
 * @module
 */
import { join } from "node:path";
import { openStore } from "../../../src/store/db.ts";
import { StateDir } from "../../../src/state_dir.ts";
import { openPool } from "../../../src/devmapper/pool.ts";
import { type DmOp, ThinPool } from "../../../src/devmapper/thin.ts";

const [dir, poolName, op, point, name, origin] = Deno.args;
const store = openStore(join(dir, "thinimage.db"));
const die = (at: DmOp) => {
  if (at === op) Deno.kill(Deno.pid, "SIGKILL");
};
const thin = new ThinPool(store, await openPool(store, poolName), {
  ...new StateDir(dir).deviceHost(),
  crashPoints: point === "afterIntent" ? { afterIntent: die } : { afterMessage: die },
});
if (op === "create_thin") await thin.createThin(name, 16 * 2 ** 20);
else if (op === "create_snap") await thin.createSnapshot(name, origin);
else await thin.remove(name);
Deno.exit(3);
