/**
 * A command line handed to `thinimage daemon` when one serves its state directory: the process
 * then loads this module and not the CLI (under emulation, where a start costs a second,
 * loading the CLI, the agent and SQLite is most of a warm activation). Only `activate` is
 * handed over, and only where the daemon's socket exists and this process may reach it; the
 * daemon answers `fallback` to anything it does not serve, and then this process does the work
 * itself, exactly as without a daemon.
 *
 * @example
 * ```ts
 * import { viaDaemon } from "./client.ts";
 * const code = await viaDaemon(["activate", "alpine"]); // undefined: run it here
 * ```
 * @module
 */
import { DEFAULT_STATE_DIR } from "../agent/defaults.ts";
import {
  type DaemonReply,
  MAX_REPLY_BYTES,
  PROTOCOL,
  readMessage,
  socketPath,
  writeMessage,
} from "./protocol.ts";

/** The commands a daemon may serve. */
const SERVED = new Set(["activate"]);

/**
 * Hand `argv` to the daemon of its state directory: its exit code once the daemon did the work
 * (its output written here), or undefined when this process is to run it (no daemon, or one
 * that does not serve it, or one that went away before answering: every step is resumable).
 */
export async function viaDaemon(argv: string[]): Promise<number | undefined> {
  const { name, stateDir } = scan(argv);
  if (name === undefined || !SERVED.has(name)) return undefined;
  const envStateDir = env("THINIMAGE_STATE_DIR");
  const path = socketPath(stateDir ?? envStateDir ?? DEFAULT_STATE_DIR);
  if (!may(path)) return undefined;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch {
    return undefined; // no daemon (no socket, or a stale one): the usual way
  }
  const stop = (sig: Deno.Signal) => () => {
    // The daemon sees the connection close and stops the run at its next safe point.
    conn.close();
    write(
      Deno.stderr,
      `\n${sig}: stopped; the work done so far is kept and resumes on the next run\n`,
    );
    Deno.exit(75);
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, stop(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  try {
    await writeMessage(conn, { protocol: PROTOCOL, argv, envStateDir });
    const reply = await readMessage(conn, MAX_REPLY_BYTES) as DaemonReply | null;
    if (!reply || "fallback" in reply || typeof reply.code !== "number") return undefined;
    write(Deno.stdout, reply.stdout);
    write(Deno.stderr, reply.stderr);
    return reply.code;
  } catch {
    return undefined;
  } finally {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/**
 * The command name and `--state-dir`, found as the CLI's parser finds them. Should this ever
 * read them otherwise, no harm follows: the daemon parses the argv with the CLI's own parser
 * and answers `fallback` unless it names the daemon's state directory.
 */
function scan(argv: string[]): { name?: string; stateDir?: string } {
  let stateDir: string | undefined;
  let name: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (a === "--state-dir") stateDir = argv[++i];
    else if (a.startsWith("--state-dir=")) stateDir = a.slice("--state-dir=".length);
    else if (a === "--log-format") i++;
    else if (!a.startsWith("-")) name ??= a;
  }
  return { name, stateDir };
}

/** Whether this process may connect to the socket (the launcher grants the default one). */
function may(path: string): boolean {
  const q = (d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d).state === "granted";
  return q({ name: "net", host: `unix:${path}` }) && q({ name: "read", path }) &&
    q({ name: "write", path });
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

function write(w: { writeSync(p: Uint8Array): number }, text: string): void {
  const data = new TextEncoder().encode(text);
  for (let off = 0; off < data.length;) off += w.writeSync(data.subarray(off));
}
