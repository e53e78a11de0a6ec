/**
 * `thinimage apply FILE DIR [--sha256 HEX | --digest] [--json]`: apply FILE as a layer onto DIR
 * (what unpacking does inside a mounted thin volume; also a debugging tool). A refused layer
 * (exit 65) leaves DIR as it was: onto an empty DIR in one pass when the blob is a plain tar
 * that fits (else validated first), undone on refusal; onto any other, validated before
 * anything is written. With `--sha256 HEX` the blob must have that digest (checked as it is
 * applied; a validation pass skips over file data instead of hashing it); `--digest` only
 * reports it. Without either the blob is not hashed: the digest costs a third of the CPU time
 * unpacking does, and `validate` reports it.
 * @module
 */
import type { Command } from "../command.ts";
import { UsageError } from "../../errors.ts";
import { applyLayer } from "../../tar/apply.ts";
import { describeSummary, openError } from "../render.ts";

const apply: Command = {
  name: "apply",
  summary: "unpack a layer tar onto a directory with OCI layer semantics (refused: nothing left)",
  usage: "thinimage apply FILE DIR [--sha256 HEX | --digest] [--json]",
  options: { sha256: { type: "string" }, digest: { type: "boolean" } },
  positionals: [2, 2],
  keeps: ["read", "write", "env", "ffi"],
  async run(ctx, { positionals, values }) {
    const [file, dir] = positionals;
    const expected = values.sha256 as string | undefined;
    if (expected !== undefined && !/^[0-9a-fA-F]{64}$/.test(expected)) {
      throw new UsageError(`--sha256 must be 64 hex digits, not '${expected}'`);
    }
    const r = await applyLayer(file, dir, {
      expectedSha256: expected,
      digest: values.digest === true,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.log.progress("applying", done, total),
    }).catch(openError(file, dir));
    ctx.log.endProgress();
    ctx.result(
      { file, dir, ...r },
      (s) =>
        `${s.file}: applied onto ${s.dir}\n${describeSummary(s)}` +
        (s.sha256 === undefined ? "" : `\n  sha256 ${s.sha256}`),
    );
  },
};
export default apply;
