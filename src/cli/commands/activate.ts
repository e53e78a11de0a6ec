/**
 * `thinimage activate IMAGE [--name NAME]`: pull the image if needed, then hand out a thin
 * snapshot of it as a device. Activating the same (image, name) again returns the same device.
 * @module
 */
import type { Command } from "../command.ts";
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  AGENT_USAGE,
  checkNetPermission,
  preloadDeviceModules,
  preloadS3Client,
  withAgent,
} from "../agent_options.ts";
import { checkName } from "../../names.ts";
import { findLiveActivation } from "../../agent/existing.ts";
import { StateDir } from "../../state_dir.ts";
import { Dmsetup } from "../../devmapper/dmsetup.ts";
import type { Agent } from "../../agent/runtime.ts";
import { UsageError } from "../../errors.ts";
import { NotServedError } from "../../daemon/protocol.ts";

/** The `--json` document of `activate`. */
export interface ActivateResult {
  image: string;
  manifest: string;
  name: string;
  thinId: number | null;
  device: string;
  path: string;
  created: boolean;
}

/** `--pull`: when `activate` lists the bucket, as `docker run --pull` does. */
export type PullPolicy = "missing" | "always" | "never";

const POLICIES: readonly PullPolicy[] = ["missing", "always", "never"];

/** The pull policy the flags ask for (`--offline` is `--pull never`). */
export function pullPolicy(values: Record<string, unknown>): PullPolicy {
  const asked = values.pull;
  if (asked !== undefined && !POLICIES.includes(asked as PullPolicy)) {
    throw new UsageError(
      `--pull must be one of ${POLICIES.join(", ")}, not ${JSON.stringify(asked)}`,
    );
  }
  if (values.offline && asked !== undefined && asked !== "never") {
    throw new UsageError(`--offline and --pull ${asked} conflict (--offline is --pull never)`);
  }
  return values.offline ? "never" : (asked as PullPolicy | undefined) ?? "missing";
}

const activate: Command = {
  name: "activate",
  summary: "pull an image if needed and hand out a thin snapshot of it as a device",
  usage: `thinimage activate IMAGE [--name NAME] [--pull missing|always|never] ${AGENT_USAGE}\n` +
    "  --name NAME         activation name (default: the image name)\n" +
    "  --pull POLICY       missing (default): an image pulled here is used as it is, without\n" +
    "                      contacting S3 ('thinimage pull' refreshes it); always: list the\n" +
    "                      bucket first and pull what changed; never: same as --offline\n" +
    AGENT_HELP,
  options: { ...AGENT_OPTIONS, name: { type: "string" }, pull: { type: "string" } },
  positionals: [1, 1],
  keeps: ["read", "write", "net", "env", "run", "sys", "ffi"],
  daemon: true,
  async run(ctx, { values, positionals }) {
    const image = checkName("image", positionals[0], "IMAGE");
    const name = values.name === undefined
      ? image
      : checkName("activation", values.name as string, "--name");
    const policy = pullPolicy(values);
    // One open of the database for the answer and, when not live, for the agent; and then
    // the pool's reads start at once, to run while the machines' modules load.
    const dir = new StateDir(ctx.stateDir);
    const store = dir.hasDatabase() ? dir.openStore() : undefined;
    const dm = new Dmsetup();
    let res;
    try {
      const live = store && await findLiveActivation(store, image, name, dm, {
        readPoolAhead: true,
        pool: values.pool as string | undefined,
      });
      if (!live) preloadDeviceModules();
      res = live ? { ...live, created: false } : await withAgent(
        ctx,
        { ...values, offline: policy === "never" },
        async (agent) => {
          // S3 is contacted only to pull: with the image here and 'missing', not at all (and
          // its client is not even loaded). What cannot succeed here fails before the network.
          const listing = policy === "always" ||
            (policy === "missing" && !readyHere(agent, image));
          if (listing) {
            // A daemon serves activations that need no listing, one at a time: a pull of
            // minutes would hold up every warm start behind it. The client pulls itself.
            if (ctx.daemon) {
              throw new NotServedError(`${image} is not pulled here, or --pull always`);
            }
            checkNetPermission(values);
            preloadS3Client();
          }
          await agent.checkPool();
          // As a child run is: --no-wait refuses (75) to wait on another process's activation.
          return await agent.effects.child(
            agent.machines.activate,
            name,
            { image, name, pull: policy },
            ctx.signal,
          );
        },
        { dm, store },
      );
    } finally {
      store?.close(); // the agent's close closed it already, unless opening the agent failed
    }
    ctx.log.endProgress();
    const doc: ActivateResult = {
      image: res.image,
      manifest: res.manifestDigest,
      name: res.name,
      thinId: res.thinId ?? null,
      device: res.device,
      path: res.path!,
      created: res.created,
    };
    ctx.result(
      doc,
      (d) =>
        `${d.path}\n${d.image} activated as ${d.name} (thin id ${d.thinId}${
          d.created ? "" : ", existing activation"
        })`,
    );
  },
};
export default activate;

/** The image is pulled here: ready, with its top chain sealed. */
function readyHere(agent: Agent, image: string): boolean {
  const img = agent.catalog.getImage(image);
  return img?.state === "ready" && img.topChain !== null &&
    agent.catalog.getChain(img.topChain)?.state === "sealed";
}
