/**
 * The frame every subcommand runs in: global flags, help, permission revocation, signals,
 * `--json` output, and the mapping from errors to exit codes.
 *
 * @example
 * ```ts
 * import { runCli } from "./frame.ts";
 * const code = await runCli(["--help"]); // 0
 * ```
 * @module
 */
import { type OptionsConfig, parseArgs } from "./args.ts";
import { COMMANDS } from "./registry.ts";
import type { Command, CommandContext, PermissionName } from "./command.ts";
import { type LogFormat, Logger, type LogLevel } from "./log.ts";
import {
  describeError,
  ExitCode,
  exitCodeOf,
  MissingPermissionError,
  TemporaryError,
  ThinimageError,
  UsageError,
} from "../errors.ts";
import { RunFailedError, type RunLink } from "../engine/errors.ts";
import { DEFAULT_STATE_DIR } from "../agent/defaults.ts";
import { NotServedError } from "../daemon/protocol.ts";

/** Where state lives when neither `--state-dir` nor `THINIMAGE_STATE_DIR` says otherwise. */
export { DEFAULT_STATE_DIR };

/** Flags every command accepts, before or after the command name. */
export const GLOBAL_OPTIONS = {
  "state-dir": { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionsConfig;

const ALL_PERMISSIONS: readonly PermissionName[] = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
];

/** Options for {@linkcode runCli}, for tests. */
export interface RunCliOptions {
  /** Where stdout goes (default: the process's stdout). */
  stdout?: (text: string) => void;
  /** Where stderr goes (default: the process's stderr). */
  stderr?: (text: string) => void;
  /** Skip revoking permissions (in-process tests share one process). */
  noRevoke?: boolean;
  /** Skip installing signal handlers. */
  noSignals?: boolean;
  /** Stops the command as SIGINT would (the daemon's, when its client goes away). */
  signal?: AbortSignal;
  /**
   * Run as `thinimage daemon` does for a client: only a command that the daemon serves, only
   * for the daemon's state directory (`envStateDir` is the client's `THINIMAGE_STATE_DIR`);
   * anything else throws {@linkcode NotServedError}, having printed nothing, for the client to
   * run itself.
   */
  daemon?: { stateDir: string; envStateDir?: string };
}

/**
 * Parse `argv`, run the command, and return the exit code. Never throws, but for
 * {@linkcode NotServedError} with `opts.daemon`.
 */
export async function runCli(argv: string[], opts: RunCliOptions = {}): Promise<number> {
  const enc = new TextEncoder();
  const writeOut = opts.stdout ?? ((t: string) => writeAll(Deno.stdout, enc.encode(t)));
  const writeErr = opts.stderr ?? ((t: string) => writeAll(Deno.stderr, enc.encode(t)));
  let log = new Logger({ level: "info", format: "text", write: opts.stderr });
  let json = argv.includes("--json");
  const controller = new AbortController();
  const removeSignals = opts.noSignals ? () => {} : installSignals(controller, writeErr);
  const outer = opts.signal;
  const stop = () => controller.abort(outer?.reason);
  if (outer?.aborted) stop();
  outer?.addEventListener("abort", stop);
  try {
    const { name, rest } = splitCommand(argv);
    if (opts.daemon && (name === undefined || !COMMANDS[name])) {
      throw new NotServedError("not a command the daemon serves");
    }
    if (name === undefined && (argv.includes("--version") || argv.includes("-V"))) {
      writeOut(`thinimage ${await version()}\n`);
      return ExitCode.Ok;
    }
    if (name === undefined || name === "help") {
      const target = name === "help" ? rest.find((a) => !a.startsWith("-")) : undefined;
      if (target && COMMANDS[target]) {
        writeOut(await commandHelp(target));
        return ExitCode.Ok;
      }
      writeOut(await globalHelp());
      const wantsHelp = argv.includes("--help") || argv.includes("-h") || name === "help";
      return wantsHelp ? ExitCode.Ok : ExitCode.Usage;
    }
    const loader = COMMANDS[name];
    if (!loader) {
      throw new UsageError(`unknown command '${name}' (see 'thinimage --help')`);
    }
    const cmd = (await loader()).default;
    if (opts.daemon && !cmd.daemon) throw new NotServedError(`the daemon does not serve ${name}`);
    const parsed = parseCommandArgs(cmd, rest);
    const g = parsed.globals;
    json = g.json;
    if (g.help) {
      if (opts.daemon) throw new NotServedError("help is printed by the client");
      writeOut(await commandHelp(name));
      return ExitCode.Ok;
    }
    log = new Logger({ level: g.level, format: g.logFormat, write: opts.stderr });
    const stateDir = opts.daemon
      ? servedStateDir(g.stateDir ?? opts.daemon.envStateDir ?? DEFAULT_STATE_DIR, opts.daemon)
      : g.stateDir ?? envStateDir() ?? DEFAULT_STATE_DIR;
    if (!opts.noRevoke) revokeAllBut(cmd.keeps);
    let printed = false;
    const ctx: CommandContext = {
      stateDir,
      json,
      log,
      signal: controller.signal,
      daemon: opts.daemon !== undefined,
      result(doc, human) {
        if (printed) throw new ThinimageError("a command printed two results");
        printed = true;
        if (json) writeOut(JSON.stringify(doc, null, 2) + "\n");
        else if (g.level !== "warn" && g.level !== "error") writeErr(human(doc) + "\n");
      },
    };
    const code = await cmd.run(ctx, { values: parsed.values, positionals: parsed.positionals });
    return code ?? ExitCode.Ok;
  } catch (err) {
    if (opts.daemon && err instanceof NotServedError) throw err;
    const e = normalizeError(err, controller.signal);
    const code = exitCodeOf(e);
    const report = errorReport(e);
    if (json) {
      const details = e instanceof ThinimageError ? e.details : undefined;
      writeOut(
        JSON.stringify(
          {
            error: {
              code,
              kind: report.kind,
              message: report.message,
              ...(report.causes.length ? { causes: report.causes } : {}),
              ...(report.runs ? { runs: report.runs } : {}),
              details,
            },
          },
          null,
          2,
        ) + "\n",
      );
    }
    // The cause first, in the user's terms; then where it happened, for whoever digs.
    log.error(
      report.message,
      report.runs && log.format === "json" ? { runs: report.runs } : undefined,
    );
    if (log.format === "text") {
      const causes = log.level === "debug" ? report.causes : [];
      for (const c of causes) writeErr(`  cause: ${c}\n`);
      if (report.runs) {
        for (const line of runLines(report.runs, log.level === "debug")) writeErr(line + "\n");
      }
    }
    if (code === ExitCode.Failure && !(e instanceof ThinimageError) && log.level === "debug") {
      writeErr(((e as Error)?.stack ?? String(e)) + "\n");
    }
    return code;
  } finally {
    outer?.removeEventListener("abort", stop);
    removeSignals();
    log.endProgress();
  }
}

/**
 * The state directory a daemon's client names, if it is the daemon's own (compared where they
 * lead, so that two spellings of one directory agree); otherwise the client runs the command.
 */
function servedStateDir(asked: string, daemon: { stateDir: string }): string {
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return undefined;
    }
  };
  const mine = real(daemon.stateDir);
  if (mine === undefined || real(asked) !== mine) {
    throw new NotServedError(`the daemon serves ${daemon.stateDir}, not ${asked}`);
  }
  return daemon.stateDir;
}

interface Globals {
  stateDir?: string;
  json: boolean;
  help: boolean;
  level: LogLevel;
  logFormat: LogFormat;
}

/** Find the command name: the first argument that is neither a flag nor a flag's value. */
function splitCommand(argv: string[]): { name?: string; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--state-dir" || a === "--log-format") {
      i++;
      continue;
    }
    if (a === "--") break;
    if (!a.startsWith("-")) return { name: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { rest: argv };
}

/** Parse one command's arguments together with the global flags. Exported for tests. */
export function parseCommandArgs(cmd: Command, rest: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...cmd.options },
    });
  } catch (err) {
    // node's text goes on about '--' after its first sentence: the usage below says more.
    const what = (err as Error).message.split(/\.\s/)[0].replace(/^[A-Z]/, (c) => c.toLowerCase());
    throw new UsageError(
      `thinimage ${cmd.name}: ${what} (see 'thinimage ${cmd.name} --help')\nusage: ${cmd.usage}`,
    );
  }
  const values = { ...parsed.values } as Record<string, string | boolean | undefined>;
  const [min, max] = cmd.positionals ?? [0, 0];
  if (!values.help && (parsed.positionals.length < min || parsed.positionals.length > max)) {
    throw new UsageError(
      `${cmd.name}: expected ${
        min === max ? min : `${min} to ${max}`
      } argument(s), got ${parsed.positionals.length}\nusage: ${cmd.usage}`,
    );
  }
  const logFormat = (values["log-format"] ?? "text") as string;
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(`--log-format must be 'text' or 'json', not '${logFormat}'`);
  }
  if (values.quiet && values.verbose) throw new UsageError("--quiet and --verbose conflict");
  const stateDir = values["state-dir"] as string | undefined;
  if (stateDir !== undefined && stateDir === "") throw new UsageError("--state-dir is empty");
  const globals: Globals = {
    stateDir,
    json: Boolean(values.json),
    help: Boolean(values.help),
    level: values.quiet ? "warn" : values.verbose ? "debug" : "info",
    logFormat,
  };
  for (const k of Object.keys(GLOBAL_OPTIONS)) delete values[k];
  return { globals, values, positionals: parsed.positionals };
}

function envStateDir(): string | undefined {
  try {
    return Deno.env.get("THINIMAGE_STATE_DIR") || undefined;
  } catch {
    return undefined; // no --allow-env: the default applies
  }
}

function revokeAllBut(keeps: readonly PermissionName[]): void {
  for (const name of ALL_PERMISSIONS) {
    if (!keeps.includes(name)) Deno.permissions.revokeSync({ name });
  }
}

/**
 * Turn Deno's permission errors into a message naming the flag, the system's "permission
 * denied" into what to do about it, and aborts into exit 75.
 */
function normalizeError(err: unknown, signal: AbortSignal): unknown {
  // Met inside a run (perhaps in another process): only its name and message came back.
  if (err instanceof RunFailedError && err.info.name === "NotCapable") {
    const m = /--allow-[a-z]+/.exec(err.info.message);
    const target = /access to "([^"]*)"/.exec(err.info.message)?.[1];
    if (m) return new MissingPermissionError(target ? `${m[0]}=${target}` : m[0], err);
  }
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    const m = /--allow-[a-z]+/.exec((err as Error).message);
    const target = /access to "([^"]*)"/.exec((err as Error).message)?.[1];
    if (m) return new MissingPermissionError(target ? `${m[0]}=${target}` : m[0], err);
    // The kernel's EACCES (Deno reports it as PermissionDenied too): the user's, not Deno's.
    const path = /: [a-z]+ '([^']*)'/.exec((err as Error).message)?.[1];
    return new ThinimageError(
      `permission denied${path ? ` on ${path}` : ""}: run as root, or give --state-dir a ` +
        "directory you own (devices need root either way)",
      { cause: err, details: path ? { path } : undefined },
    );
  }
  if (signal.aborted && !(err instanceof ThinimageError && err.exitCode !== ExitCode.Failure)) {
    return new TemporaryError(
      "interrupted; the work done so far is kept and resumes on the next run",
      {
        cause: err,
      },
    );
  }
  return err;
}

/**
 * The first line of an error (its own message: the cause, in the user's terms), the causes
 * under it that add something (fetch's text, the kernel's errno), its kind, and the runs it
 * came through.
 */
function errorReport(
  e: unknown,
): { message: string; causes: string[]; kind: string; runs?: RunLink[] } {
  const kind = e instanceof RunFailedError ? e.info.name : (e as Error)?.name ?? "Error";
  const runs = e instanceof RunFailedError ? e.runs : undefined;
  const texts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const text = cur instanceof Error ? cur.message : String(cur);
    if (text && !texts.some((t) => t.includes(text))) texts.push(text);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return {
    message: texts[0] ?? describeError(e),
    causes: texts.slice(1),
    kind,
    ...(runs ? { runs } : {}),
  };
}

/**
 * Where an error came from, after its first line: the outermost run (enough to find the rest
 * with `thinimage history`), or with `--verbose` every run it passed through.
 */
export function runLines(runs: readonly RunLink[], all: boolean): string[] {
  const describe = (r: RunLink) =>
    `run ${r.runId}${r.machine ? ` (${r.machine} ${r.resource ?? ""}`.trimEnd() + ")" : ""}` +
    ` at '${r.state}'`;
  const shown = all ? runs : runs.slice(0, 1);
  return [
    ...shown.map((r, i) => `  ${i === 0 ? "in" : "  via"} ${describe(r)}`),
    `  more: thinimage history ${runs[0].runId}`,
  ];
}

async function version(): Promise<string> {
  const { default: config } = await import("../../deno.json", { with: { type: "json" } });
  return (config as { version?: string }).version ?? "unknown";
}

function installSignals(controller: AbortController, writeErr: (t: string) => void): () => void {
  const handlers: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const h = () => {
      if (controller.signal.aborted) {
        writeErr(`\n${sig} again: exiting now\n`);
        Deno.exit(ExitCode.TempFail);
      }
      writeErr(`\n${sig}: stopping at the next safe point (again to exit now)\n`);
      controller.abort(new TemporaryError(`interrupted by ${sig}`));
    };
    try {
      Deno.addSignalListener(sig, h);
      handlers.push([sig, h]);
    } catch { /* signals unsupported here */ }
  }
  return () => {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  };
}

async function globalHelp(): Promise<string> {
  const lines = [
    "thinimage: turn container images stored in S3 into devicemapper thin devices",
    "",
    "usage: thinimage [--state-dir DIR] [--json] [--quiet|--verbose] [--log-format text|json] COMMAND [ARGS]",
    "",
    "commands:",
  ];
  for (const name of Object.keys(COMMANDS)) {
    const cmd = (await COMMANDS[name]()).default;
    lines.push(`  ${name.padEnd(12)} ${cmd.summary}`);
  }
  lines.push(
    "",
    "global flags:",
    `  --state-dir DIR     state directory (env THINIMAGE_STATE_DIR; default ${DEFAULT_STATE_DIR})`,
    "  --json              print one JSON document on stdout",
    "  -q, --quiet         only warnings and errors on stderr",
    "  -v, --verbose       debug output on stderr",
    "  --log-format FMT    text (default) or json lines on stderr, for cron",
    "  --version           print the version",
    "",
    "exit codes: 0 done, 2 usage, 65 invalid or hostile input, 69 source unavailable,",
    "            75 temporary (busy, interrupted, low space: retry later), 1 anything else",
  );
  return lines.join("\n") + "\n";
}

async function commandHelp(name: string): Promise<string> {
  const cmd = (await COMMANDS[name]()).default;
  return `${cmd.summary}\n\nusage: ${cmd.usage}\n`;
}

function writeAll(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += w.writeSync(data.subarray(off));
}
