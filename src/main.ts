/**
 * The `thinimage` command line. Usage: `thinimage [GLOBAL FLAGS] COMMAND [ARGS]`; see README.md.
 * @module
 */
import { viaDaemon } from "./daemon/client.ts";

if (import.meta.main) {
  // Where a daemon serves this command, the CLI is not even loaded here.
  const served = await viaDaemon(Deno.args);
  if (served !== undefined) Deno.exit(served);
  const { runCli } = await import("./cli/frame.ts");
  Deno.exit(await runCli(Deno.args));
}
