/**
 * `thinimage validate FILE [--json]`: the validation pass alone. Reads FILE and nothing else,
 * writes nothing; exit 0 with a summary, or 65 with every violation.
 * @module
 */
import type { Command } from "../command.ts";
import { validateLayer } from "../../tar/validate.ts";
import { describeSummary, openError } from "../render.ts";

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
