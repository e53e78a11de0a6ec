/**
 * What a subcommand is: its options, the permissions it keeps, and its `run`.
 *
 * Each subcommand lives in `src/cli/commands/NAME.ts` and default-exports a {@linkcode Command};
 * `src/cli/registry.ts` lists them with lazy imports, so `validate` never loads the S3 SDK.
 *
 * @example
 * ```ts
 * import type { Command } from "../command.ts";
 * const hello: Command = {
 *   name: "hello",
 *   summary: "say hello",
 *   usage: "thinimage hello [--loud]",
 *   options: { loud: { type: "boolean" } },
 *   keeps: [],
 *   run(ctx, { values }) {
 *     ctx.result({ greeting: values.loud ? "HELLO" : "hello" }, (r) => r.greeting);
 *     return 0;
 *   },
 * };
 * export default hello;
 * ```
 * @module
 */
import type { OptionsConfig } from "./args.ts";
import type { Logger } from "./log.ts";

/** A Deno permission a command may keep after argument parsing; all others are revoked. */
export type PermissionName = "read" | "write" | "net" | "env" | "run" | "sys" | "ffi";

/** Parsed arguments of one subcommand (global flags excluded). */
export interface CommandArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** What every command gets from the frame. */
export interface CommandContext {
  /** The state directory (`--state-dir`, `THINIMAGE_STATE_DIR`, or `/var/lib/thinimage`). */
  stateDir: string;
  /** `--json`: print exactly one JSON document on stdout. */
  json: boolean;
  /** Human output, progress and log lines, all on stderr. */
  log: Logger;
  /** Aborted on SIGINT or SIGTERM: stop at the next safe point and leave work resumable. */
  signal: AbortSignal;
  /**
   * Run by `thinimage daemon` for a client: work the daemon does not take on (see
   * {@linkcode Command.daemon}) throws `NotServedError` before it starts, and the client runs
   * the command itself.
   */
  daemon?: boolean;
  /**
   * Print the command's result: the JSON document with `--json`, otherwise `human(doc)` on
   * stderr (nothing with `--quiet`). Call once.
   */
  result<T>(doc: T, human: (doc: T) => string): void;
}

/** A subcommand. */
export interface Command {
  name: string;
  /** One line for `thinimage --help`. */
  summary: string;
  /** The usage block for `thinimage NAME --help`. */
  usage: string;
  /** Options of this subcommand, in `node:util` parseArgs form (src/cli/args.ts). */
  options: OptionsConfig;
  /** Positional arguments: [min, max] (default [0, 0]). */
  positionals?: [number, number];
  /** Permissions kept after parsing. Everything else is revoked before `run`. */
  keeps: readonly PermissionName[];
  /**
   * `thinimage daemon` may run this command for a client (src/daemon/client.ts lists the
   * names it hands over, as it loads no command).
   */
  daemon?: boolean;
  /** Returns the exit code (0 when omitted); throws a ThinimageError for failures. */
  run(ctx: CommandContext, args: CommandArgs): Promise<number | void> | number | void;
}
