/**
 * The read-only answer to activating an (image, name) that is already active: the activation
 * row, its device row, and one `dmsetup table` showing the device live with the recorded thin
 * id. Nothing changes, so no run is needed, and none of the engine, machines, S3 client or pool
 * set-up is loaded: this is the path a cron job or a machine start takes most often.
 *
 * @example
 * ```ts
 * import { liveActivation } from "./existing.ts";
 * const a = await liveActivation("/var/lib/thinimage", "golang", "web");
 * a?.path; // "/dev/mapper/thinimage-act-web", or undefined: go through the activate machine
 * ```
 * @module
 */
import { StateDir } from "../state_dir.ts";
import type { Store } from "../store/db.ts";
import { Catalog } from "../store/catalog.ts";
import { SqliteRunStore } from "../store/runs.ts";
import { MACHINE } from "../names.ts";
import { choosePool, DeviceRecords, readPoolAhead } from "../devmapper/records.ts";
import { Dmsetup } from "../devmapper/dmsetup.ts";
import { isThinTableOf } from "../devmapper/parse.ts";

/** An activation found live. */
export interface LiveActivation {
  image: string;
  manifestDigest: string;
  name: string;
  device: string;
  thinId: number;
  path: string;
}

/**
 * The activation `name` of `image` when it exists, no run of that name is in flight, and its
 * device is live with the thin id on record; otherwise undefined (no state directory, no such
 * activation, another image's, an interrupted run, a device gone after a reboot or half made):
 * the caller then runs the activate machine, which makes, resumes, repairs or refuses it.
 */
export async function liveActivation(
  stateDir: string,
  image: string,
  name: string,
  dm: Dmsetup = new Dmsetup(),
): Promise<LiveActivation | undefined> {
  const dir = new StateDir(stateDir);
  if (!dir.hasDatabase()) return undefined;
  const store = dir.openStore();
  try {
    return await findLiveActivation(store, image, name, dm);
  } finally {
    store.close();
  }
}

/**
 * {@linkcode liveActivation} in an open store. With `readPoolAhead`, when the answer is no
 * (the machine runs next), the pool's reads start now, to run while the machine loads.
 */
export async function findLiveActivation(
  store: Store,
  image: string,
  name: string,
  dm: Dmsetup = new Dmsetup(),
  opts: { readPoolAhead?: boolean; pool?: string } = {},
): Promise<LiveActivation | undefined> {
  const found = await find();
  if (!found && opts.readPoolAhead) readPoolAhead(store, choosePool(store, opts.pool), dm);
  return found;

  async function find(): Promise<LiveActivation | undefined> {
    // A run of this name still in flight (a process died in it, or a deactivate is under
    // way) is for the engine to resume or join: answering from the rows would leave it so.
    const runs = new SqliteRunStore(store);
    if (runs.hasActive(name, [MACHINE.activate, MACHINE.deactivate])) return undefined;
    const a = new Catalog(store).getActivation(name);
    if (!a || a.image !== image) return undefined;
    const live = await liveDevice(new DeviceRecords(store), a.device, dm);
    return live && { image: a.image, manifestDigest: a.manifestDigest, name, ...live };
  }
}

/**
 * The recorded `device` when its record says active and the kernel holds it with the recorded
 * thin id: one `dmsetup table`, where activating through the pool would first check the pool's
 * whole set-up (a dozen device-tool processes). Otherwise undefined.
 *
 * The same test as the pool's own (`isThinTableOf`), less the pool's device number, which only
 * the pool's set-up reads: whatever fails it goes through the pool, which tells a foreign
 * device under this name apart and refuses it.
 */
export async function liveDevice(
  records: DeviceRecords,
  device: string,
  dm: Dmsetup = new Dmsetup(),
): Promise<{ device: string; thinId: number; path: string } | undefined> {
  const d = records.device(device);
  if (d?.state !== "active") return undefined;
  if (!isThinTableOf(await dm.table(device), { thinId: d.thinId })) return undefined;
  return { device, thinId: d.thinId, path: d.path };
}
