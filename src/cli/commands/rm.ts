/**
 * `thinimage rm IMAGE`: forget an image and free what only it used (its chain devices and
 * blobs that no other image or activation needs). Refused while activations use the image.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { collectGarbage, type GcResult } from "../../agent/gc.ts";
import { parseImageName } from "../../image/name.ts";
import { InvalidInputError } from "../../errors.ts";
import { gcSummary } from "./gc.ts";

const rm: Command = {
  name: "rm",
  summary: "forget an image and free what only it used (refused while activated)",
  usage: "thinimage rm IMAGE [--pool NAME]",
  options: { pool: AGENT_OPTIONS.pool },
  positionals: [1, 1],
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const image = parseImageName(positionals[0]);
    const r: { image: string; gc: GcResult } = await withAgent(
      ctx,
      { ...values, offline: true },
      async (agent) => {
        if (!agent.catalog.getImage(image)) throw new InvalidInputError(`no image named ${image}`);
        const users = agent.catalog.listActivations().filter((a) => a.image === image);
        if (users.length > 0) {
          throw new InvalidInputError(
            `${image} is in use by activation(s) ${
              users.map((a) => a.name).join(", ")
            }: deactivate them first`,
          );
        }
        agent.catalog.deleteImage(image);
        return { image, gc: await collectGarbage(agent, { dryRun: false }) };
      },
    );
    ctx.result(r, (d) => `${d.image}: removed\n${gcSummary(d.gc)}`);
  },
};
export default rm;
