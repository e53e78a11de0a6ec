/**
 * `thinimage validate FILE [--json]`: the validation pass alone. Reads FILE and nothing else,
 * writes nothing; exit 0 with a summary, or 65 with every violation.
 * @module
 */
import type { Command } from "../command.ts";
import { formatBytes } from "../log.ts";
import { validateLayer } from "../../tar/validate.ts";
import type { LayerSummary } from "../../tar/rules.ts";
import { openError } from "./apply.ts";

const validate: Command = {
  name: "validate",
  summary: "check a layer tar (plain or gzip) against every rule, writing nothing",
  usage: "thinimage validate FILE [--json]",
  options: {},
  positionals: [1, 1],
  keeps: ["read", "env"],
  async run(ctx, { positionals }) {
    const file = positionals[0];
    const summary = await validateLayer(file, { signal: ctx.signal }).catch(openError(file));
    ctx.result({ file, valid: true, ...summary }, (s) => `${s.file}: valid\n${describeSummary(s)}`);
  },
};
export default validate;

/** A layer summary as a few human lines. */
export function describeSummary(s: LayerSummary): string {
  const largest = s.largestFile
    ? `${s.largestFile.path} (${formatBytes(s.largestFile.bytes)})`
    : "none";
  return [
    `  ${s.entries} entries: ${s.files} files, ${s.directories} directories, ${s.symlinks} symlinks, ${s.hardlinks} hardlinks, ${s.whiteouts} whiteouts`,
    `  unpacked ${formatBytes(s.unpackedBytes)} from ${formatBytes(s.blobBytes)} (${
      s.compression === "none" ? "plain tar" : s.compression
    })`,
    `  largest file: ${largest}`,
  ].join("\n");
}
