/**
 * `thinimage apply FILE DIR [--json]`: validate FILE, then apply it as a layer onto DIR (what
 * unpacking does inside a mounted thin volume; also a debugging tool). Nothing is written when
 * validation fails (exit 65).
 * @module
 */
import type { Command } from "../command.ts";
import { UsageError } from "../../errors.ts";
import { applyLayer } from "../../tar/apply.ts";
import { describeSummary } from "./validate.ts";

const apply: Command = {
  name: "apply",
  summary: "validate a layer tar, then unpack it onto a directory with OCI layer semantics",
  usage: "thinimage apply FILE DIR [--json]",
  options: {},
  positionals: [2, 2],
  keeps: ["read", "write", "env"],
  async run(ctx, { positionals }) {
    const [file, dir] = positionals;
    const r = await applyLayer(file, dir, {
      signal: ctx.signal,
      onProgress: (done, total) => ctx.log.progress("applying", done, total),
    }).catch(openError(file, dir));
    ctx.log.endProgress();
    ctx.result(
      { file, dir, ...r },
      (s) => `${s.file}: applied onto ${s.dir}\n${describeSummary(s)}\n  sha256 ${s.sha256}`,
    );
  },
};
export default apply;

/** Turn "no such file" for the command's own arguments into a usage error (exit 2). */
export function openError(file: string, dir?: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      throw new UsageError(
        `cannot open ${dir ? `${file} or ${dir}` : file}: ${(err as Error).message}`,
      );
    }
    if (err instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`${file} is a directory, not a layer file`);
    }
    throw err;
  };
}
