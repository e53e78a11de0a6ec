/**
 * `thinimage activate IMAGE [--name NAME]`: pull the image if needed, then hand out a thin
 * snapshot of it as a device. Activating the same (image, name) again returns the same device.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_HELP, AGENT_OPTIONS, AGENT_USAGE, withAgent } from "../agent_options.ts";
import { checkName } from "../../names.ts";
import { liveActivation } from "../../agent/existing.ts";

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

const activate: Command = {
  name: "activate",
  summary: "pull an image if needed and hand out a thin snapshot of it as a device",
  usage: `thinimage activate IMAGE [--name NAME] ${AGENT_USAGE}\n` +
    "  --name NAME         activation name (default: the image name)\n" + AGENT_HELP,
  options: { ...AGENT_OPTIONS, name: { type: "string" } },
  positionals: [1, 1],
  keeps: ["read", "write", "net", "env", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const image = checkName("image", positionals[0], "IMAGE");
    const name = values.name === undefined
      ? image
      : checkName("activation", values.name as string, "--name");
    const live = await liveActivation(ctx.stateDir, image, name);
    const res = live ? { ...live, created: false } : await withAgent(ctx, values, async (agent) => {
      // Every new activation needs the pool: open it (a device-tool process) while the
      // image is resolved (the S3 SDK loads for seconds under emulation). Its failure, if
      // any, is met where the pool is used.
      agent.pool().catch(() => {});
      const run = await agent.engine.start(agent.machines.activate, name, { image, name }, {
        signal: ctx.signal,
      });
      return await run.wait({ signal: ctx.signal });
    });
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
