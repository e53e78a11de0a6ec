/**
 * The daemon's side of the socket: one long-running process that has loaded the CLI, the agent
 * and SQLite once, and runs its clients' command lines (src/daemon/client.ts) one at a time,
 * as they would run themselves. A warm activation then costs a client little more than an
 * empty Deno start. Nothing here is state: the runs live in SQLite, as without a daemon, so a
 * daemon that dies mid-command leaves what any process leaves, and its client does the work
 * itself.
 *
 * @example
 * ```ts
 * import { serveDaemon } from "./server.ts";
 * const stop = new AbortController();
 * await serveDaemon({
 *   stateDir: "/var/lib/thinimage",
 *   signal: stop.signal,
 *   log: { info: console.error, warn: console.error },
 *   run: (argv, io) => Promise.resolve(0), // the CLI, in daemon mode
 * });
 * ```
 * @module
 */
import { MissingPermissionError, TemporaryError, ThinimageError } from "../errors.ts";
import {
  type DaemonReply,
  type DaemonRequest,
  MAX_REPLY_BYTES,
  MAX_REQUEST_BYTES,
  NotServedError,
  PROTOCOL,
  readMessage,
  writeMessage,
} from "./protocol.ts";
import { StateDir } from "../state_dir.ts";

/** Connections held open at once, idle ones included; more are closed as they come. */
export const MAX_CLIENTS = 64;
/** How long a client has to send its request once connected. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** What one client's command line runs with. */
export interface ClientIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Aborted when the client goes away or the daemon stops. */
  signal: AbortSignal;
  /** The client's `THINIMAGE_STATE_DIR`. */
  envStateDir?: string;
}

/** What {@linkcode serveDaemon} needs. */
export interface ServeOptions {
  stateDir: string;
  /** Stops the daemon: no new clients; the one running is stopped at its next safe point. */
  signal: AbortSignal;
  log: { info(msg: string): void; warn(msg: string): void };
  /** Runs a client's argv (the CLI in daemon mode); throws `NotServedError` to decline it. */
  run(argv: string[], io: ClientIo): Promise<number>;
  /** Called once the socket accepts clients. */
  onListening?(path: string): void;
}

/**
 * Serve `stateDir`'s socket until `signal` aborts. One daemon per state directory (an flock on
 * `daemon.lock` there; a second one fails with {@linkcode TemporaryError}); the socket is made
 * afresh, mode 0600, and removed on the way out.
 */
export async function serveDaemon(opts: ServeOptions): Promise<void> {
  const dir = new StateDir(opts.stateDir);
  const path = dir.daemonSocket;
  if (Deno.permissions.querySync({ name: "net", host: `unix:${path}` }).state !== "granted") {
    throw new MissingPermissionError(`--allow-net=unix:${path}`);
  }
  await dir.ensure();
  const lock = Deno.openSync(dir.daemonLock, { read: true, write: true, create: true });
  try {
    if (!lock.tryLockSync(true)) {
      throw new TemporaryError(
        `a daemon already serves ${opts.stateDir}: stop that one first, or leave it serving`,
      );
    }
    // Holding the lock, any socket here is a dead daemon's.
    try {
      Deno.removeSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    let listener: Deno.UnixListener;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (err) {
      throw new ThinimageError(
        `cannot listen on ${path}: ${(err as Error).message} (a shorter --state-dir path?)`,
        { cause: err },
      );
    }
    try {
      // Only its owner (root, on a host) may hand it work: it makes devices.
      Deno.chmodSync(path, 0o600);
      await acceptLoop(listener, path, opts);
    } finally {
      try {
        Deno.removeSync(path);
      } catch { /* gone */ }
    }
  } finally {
    lock.close();
  }
}

async function acceptLoop(
  listener: Deno.UnixListener,
  path: string,
  opts: ServeOptions,
): Promise<void> {
  const close = () => {
    try {
      listener.close();
    } catch { /* closed */ }
  };
  if (opts.signal.aborted) return close();
  opts.signal.addEventListener("abort", close);
  opts.onListening?.(path);
  opts.log.info(`serving ${opts.stateDir} on ${path}`);
  let open = 0;
  /** Commands run one at a time: each waits for the one before. */
  let queue: Promise<void> = Promise.resolve();
  const pending = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      if (open >= MAX_CLIENTS) {
        conn.close();
        continue;
      }
      open++;
      const p = (async () => {
        try {
          const req = await readRequest(conn);
          if (req === undefined) return;
          const turn = queue.then(() => execute(conn, req, opts));
          queue = turn.catch(() => {});
          await turn;
        } catch {
          /* a client that broke the protocol or left: nothing to tell it */
        } finally {
          open--;
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
  } catch (err) {
    if (!opts.signal.aborted) throw err;
  } finally {
    opts.signal.removeEventListener("abort", close);
    close();
  }
  await Promise.allSettled([...pending]);
}

/** The request, or undefined for a peer that is not a client of this protocol. */
async function readRequest(conn: Deno.Conn): Promise<DaemonRequest | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      try {
        conn.close();
      } catch { /* closed */ }
      resolve(null);
    }, REQUEST_TIMEOUT_MS);
  });
  try {
    const msg = await Promise.race([readMessage(conn, MAX_REQUEST_BYTES).catch(() => null), late]);
    return isRequest(msg) ? msg : undefined;
  } finally {
    clearTimeout(timer);
  }
}

function isRequest(m: unknown): m is DaemonRequest {
  if (typeof m !== "object" || m === null) return false;
  const r = m as Record<string, unknown>;
  return typeof r.protocol === "number" && Array.isArray(r.argv) &&
    r.argv.every((a) => typeof a === "string") &&
    (r.envStateDir === undefined || typeof r.envStateDir === "string");
}

async function execute(conn: Deno.Conn, req: DaemonRequest, opts: ServeOptions): Promise<void> {
  const reply = async (r: DaemonReply) => await writeMessage(conn, r);
  if (req.protocol !== PROTOCOL) return await reply({ fallback: `protocol ${PROTOCOL}` });
  if (opts.signal.aborted) return await reply({ fallback: "the daemon is stopping" });
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  opts.signal.addEventListener("abort", stop);
  // A client sends nothing after its request: a byte or the end means it went away.
  conn.read(new Uint8Array(1)).then(stop, stop);
  const out = new Capture();
  const err = new Capture();
  const started = performance.now();
  try {
    const code = await opts.run(req.argv, {
      stdout: (t) => out.add(t),
      stderr: (t) => err.add(t),
      signal: ctl.signal,
      envStateDir: req.envStateDir,
    });
    opts.log.info(
      `thinimage ${req.argv.join(" ")}: exit ${code} in ${
        (performance.now() - started).toFixed(0)
      } ms`,
    );
    if (!ctl.signal.aborted || opts.signal.aborted) {
      await reply({ code, stdout: out.text(), stderr: err.text() });
    }
  } catch (e) {
    // Declined, or a fault of the daemon's own: either way the client can do it itself.
    if (!(e instanceof NotServedError)) opts.log.warn(`thinimage ${req.argv.join(" ")}: ${e}`);
    await reply({ fallback: e instanceof NotServedError ? e.message : "the daemon failed" });
  } finally {
    opts.signal.removeEventListener("abort", stop);
  }
}

/** Output kept for the reply, bounded (the rest is cut, and the cut said). */
class Capture {
  #parts: string[] = [];
  #bytes = 0;
  #cut = false;
  add(t: string): void {
    if (this.#cut) return;
    // Two captures, each at most 6 bytes of JSON per character (a control character's
    // escape): together under the client's cap.
    const limit = MAX_REPLY_BYTES / 16;
    if (this.#bytes + t.length > limit) {
      this.#parts.push(t.slice(0, Math.max(0, limit - this.#bytes)), "\n[output cut]\n");
      this.#cut = true;
      return;
    }
    this.#parts.push(t);
    this.#bytes += t.length;
  }
  text(): string {
    return this.#parts.join("");
  }
}
