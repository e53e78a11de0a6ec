/**
 * `thinimage deactivate NAME`: remove an activation's device and forget it.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { checkName } from "../../names.ts";

const deactivate: Command = {
  name: "deactivate",
  summary: "remove an activation's device",
  usage: "thinimage deactivate NAME [--pool NAME] [--no-wait]",
  options: { pool: AGENT_OPTIONS.pool, "no-wait": AGENT_OPTIONS["no-wait"] },
  positionals: [1, 1],
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const name = checkName("activation", positionals[0], "NAME");
    const res = await withAgent(ctx, { ...values, offline: true }, async (agent) => {
      return await agent.effects.child(agent.machines.deactivate, name, { name }, ctx.signal);
    });
    ctx.result(res, (r) => `${r.name}: deactivated (${r.device} removed)`);
  },
};
export default deactivate;
