/**
 * `thinimage gc [--dry-run]`: remove chain devices and blobs that no image or activation needs.
 * @module
 */
import type { Command } from "../command.ts";
import { AGENT_OPTIONS, withAgent } from "../agent_options.ts";
import { collectGarbage, type GcResult } from "../../agent/gc.ts";
import { formatBytes } from "../log.ts";

/** One line for a gc result. */
export function gcSummary(r: GcResult): string {
  const verb = r.dryRun ? "would remove" : "removed";
  return `gc: ${verb} ${r.chains.length} chain device(s) and ${r.blobs.length} blob(s) (${
    formatBytes(r.blobBytes)
  })` + r.chains.map((c) => `\n  device ${c.device}`).join("") +
    r.blobs.map((b) => `\n  blob sha256:${b.sha256}`).join("");
}

const gc: Command = {
  name: "gc",
  summary: "remove chain devices and blobs that no image or activation needs",
  usage: "thinimage gc [--dry-run] [--pool NAME]",
  options: { "dry-run": { type: "boolean" }, pool: AGENT_OPTIONS.pool },
  keeps: ["read", "write", "env", "run", "sys"],
  async run(ctx, { values }) {
    const r = await withAgent(
      ctx,
      { ...values, offline: true },
      (agent) => collectGarbage(agent, { dryRun: Boolean(values["dry-run"]) }),
    );
    ctx.result(r, gcSummary);
  },
};
export default gc;
