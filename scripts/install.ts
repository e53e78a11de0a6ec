/**
 * Writes a permission-locked thinimage: a launcher (`deno install -g --root DIR`, for cron) or,
 * with `--compile`, a binary (`deno compile`). Both get exactly the flags of
 * src/cli/permissions.ts for the given state directory and S3 endpoint.
 *
 *   deno task install --root /usr/local [--endpoint URL] [--state-dir DIR]
 *   deno task compile [--output bin/thinimage] [--endpoint URL] [--state-dir DIR]
 *
 * `--endpoint` sets `--allow-net` to that endpoint's host (the default allows the public
 * bucket's hosts only; a local S3 server is granted by naming it). `--state-dir` names the
 * state directory whose daemon socket it may use (default /var/lib/thinimage's).
 *
 * `deno compile` fetches its runtime from Deno's servers, which these machines cannot reach:
 * the command is right, but only a connected machine can run it.
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { permissionFlags, PUBLIC_S3_HOSTS } from "../src/cli/permissions.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    endpoint: { type: "string" },
    "state-dir": { type: "string" },
    compile: { type: "boolean" },
    output: { type: "string", default: "bin/thinimage" },
    "dry-run": { type: "boolean" },
  },
});

const repo = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const hosts = values.endpoint ? [new URL(values.endpoint).host] : [...PUBLIC_S3_HOSTS];
const flags = permissionFlags({ netHosts: hosts, stateDir: values["state-dir"] });
let args: string[];
if (values.compile) {
  args = [
    "compile",
    "--output",
    values.output!,
    ...flags,
    `--config=${repo}/deno.json`,
    // Workers are loaded by URL at run time: the binary must carry their modules.
    `--include=${repo}/src/tar/file_writer_worker.ts`,
    `--include=${repo}/src/tar/sha256_worker.ts`,
    `${repo}/src/main.ts`,
  ];
} else {
  if (!values.root) {
    console.error("usage: deno task install --root DIR [--endpoint URL]");
    Deno.exit(2);
  }
  args = [
    "install",
    "-g",
    "--force",
    "--root",
    values.root,
    "-n",
    "thinimage",
    `--config=${repo}/deno.json`,
    ...flags,
    `${repo}/src/main.ts`,
  ];
}
if (values["dry-run"]) {
  console.log(JSON.stringify([Deno.execPath(), ...args]));
  Deno.exit(0);
}
const { code } = await new Deno.Command(Deno.execPath(), { args, stdin: "null" }).spawn().status;
Deno.exit(code);
