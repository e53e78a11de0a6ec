/**
 * `thinimage gc [--dry-run]`: remove chain devices and blobs that no image or activation needs.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { collectGarbage, DEFAULT_HISTORY_DAYS, KEEP_RUNS_PER_RESOURCE } from "../../agent/gc.ts";
import { UsageError } from "../../errors.ts";
import { gcSummary } from "../render.ts";

const gc: Command = {
  name: "gc",
  summary: "remove chain devices and blobs that no image or activation needs",
  usage: "thinimage gc [--dry-run] [--pool NAME] [--history-days N]\n" +
    `  --history-days N  forget finished runs older than N days (default ${DEFAULT_HISTORY_DAYS}),\n` +
    `                    keeping the newest ${KEEP_RUNS_PER_RESOURCE} of each machine and resource for 'history'`,
  options: {
    "dry-run": { type: "boolean" },
    pool: AGENT_OPTIONS.pool,
    "history-days": { type: "string" },
  },
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values }) {
    const raw = values["history-days"] as string | undefined;
    const historyDays = raw === undefined ? undefined : Number(raw);
    if (historyDays !== undefined && !(Number.isInteger(historyDays) && historyDays >= 0)) {
      throw new UsageError(`--history-days wants a whole number of days, not ${raw}`);
    }
    const r = await withAgent(
      ctx,
      { ...values, offline: true },
      (agent) => collectGarbage(agent, { dryRun: Boolean(values["dry-run"]), historyDays }),
    );
    ctx.result(r, gcSummary);
  },
};
export default gc;
