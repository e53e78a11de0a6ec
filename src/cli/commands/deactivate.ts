/**
 * `thinimage deactivate NAME`: remove an activation's device and forget it.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { ACTIVATION_NAME } from "../../image/chain.ts";
import { UsageError } from "../../errors.ts";

const deactivate: Command = {
  name: "deactivate",
  summary: "remove an activation's device",
  usage: "thinimage deactivate NAME [--pool NAME] [--no-wait]",
  options: { pool: AGENT_OPTIONS.pool, "no-wait": AGENT_OPTIONS["no-wait"] },
  positionals: [1, 1],
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const name = positionals[0];
    if (!ACTIVATION_NAME.test(name)) {
      throw new UsageError(
        `activation name ${JSON.stringify(name)} must match ${ACTIVATION_NAME.source}`,
      );
    }
    const res = await withAgent(ctx, { ...values, offline: true }, async (agent) => {
      const run = await agent.engine.start(agent.machines.deactivate, name, { name }, {
        signal: ctx.signal,
      });
      return await run.wait({ signal: ctx.signal });
    });
    ctx.result(res, (r) => `${r.name}: deactivated (${r.device} removed)`);
  },
};
export default deactivate;
