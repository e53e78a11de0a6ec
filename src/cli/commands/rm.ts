/**
 * `thinimage rm IMAGE`: forget an image and free what only it used (its chain devices and
 * blobs that no other image or activation needs). Refused while activations use the image (exit
 * 75: it succeeds once they are deactivated).
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { collectGarbage, type GcResult } from "../../agent/gc.ts";
import { checkName } from "../../names.ts";
import { TemporaryError, UsageError } from "../../errors.ts";
import { gcSummary } from "../render.ts";

const rm: Command = {
  name: "rm",
  summary: "forget an image and free what only it used (refused while activated)",
  usage: "thinimage rm IMAGE [--pool NAME]",
  options: { pool: AGENT_OPTIONS.pool },
  positionals: [1, 1],
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const image = checkName("image", positionals[0], "IMAGE");
    const r: { image: string; gc: GcResult } = await withAgent(
      ctx,
      { ...values, offline: true },
      async (agent) => {
        if (!agent.catalog.getImage(image)) {
          throw new UsageError(`no image named '${image}' here: see 'thinimage ls'`, {
            details: { image },
          });
        }
        const users = agent.catalog.listActivations().filter((a) => a.image === image);
        if (users.length > 0) {
          // Not bad input: it works once they are gone, so a caller (cron) may try again.
          const names = users.map((a) => a.name);
          throw new TemporaryError(
            `${image} is in use by activation(s) ${names.join(", ")}: deactivate them first ` +
              `('thinimage deactivate ${names[0]}'), then remove it`,
            { details: { image, activations: names } },
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
