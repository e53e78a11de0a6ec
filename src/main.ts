/**
 * The `thinimage` command line. Usage: `thinimage [GLOBAL FLAGS] COMMAND [ARGS]`; see README.md.
 * @module
 */
import { runCli } from "./cli/frame.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
