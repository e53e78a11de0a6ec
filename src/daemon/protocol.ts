/**
 * What `thinimage daemon` and a command that hands itself to it say over the daemon's socket
 * (`STATE_DIR/daemon.sock`): one request, one reply, each a line of JSON. The client's side
 * loads this module and nothing else of the project, so it imports nothing.
 *
 * @example
 * ```ts
 * import { socketPath } from "./protocol.ts";
 * socketPath("/var/lib/thinimage"); // "/var/lib/thinimage/daemon.sock"
 * ```
 * @module
 */

/**
 * Bumped whenever a request or reply changes meaning, and whenever what the daemon serves
 * changes: a daemon left running across an upgrade answers a newer client `fallback`, and the
 * client does the work itself, with its own code.
 */
export const PROTOCOL = 1;

/** An argv is short; anything longer is not a client of ours. */
export const MAX_REQUEST_BYTES = 64 << 10;
/** `activate`'s output is a few lines; its error, a few more. */
export const MAX_REPLY_BYTES = 1 << 20;

/** A command line the client would otherwise run itself. */
export interface DaemonRequest {
  protocol: number;
  argv: string[];
  /** The client's `THINIMAGE_STATE_DIR`, which the argv's meaning depends on. */
  envStateDir?: string;
}

/**
 * The command's exit code and output, or `fallback`: the daemon does not serve this command
 * line (another command, another state directory, an image not pulled here, a protocol
 * mismatch), so the client runs it itself, exactly as it would with no daemon.
 */
export type DaemonReply =
  | { code: number; stdout: string; stderr: string }
  | { fallback: string };

/** Thrown inside the daemon by a command that will not do this work there. */
export class NotServedError extends Error {
  override name = "NotServedError";
}

/** The socket of the daemon that serves `stateDir`. */
export function socketPath(stateDir: string): string {
  return `${stateDir.replace(/\/+$/, "")}/daemon.sock`;
}

/** Write `msg` as one line. */
export async function writeMessage(conn: Deno.Conn, msg: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(msg) + "\n");
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/**
 * Read one line of JSON, at most `max` bytes: null when the peer closed first, sent more, or
 * sent something that is not JSON (a peer that breaks the protocol gets no further).
 */
export async function readMessage(conn: Deno.Conn, max: number): Promise<unknown | null> {
  const buf = new Uint8Array(Math.min(max, 64 << 10) + 1);
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return null;
    const chunk = buf.subarray(0, n);
    const nl = chunk.indexOf(10);
    const take = nl < 0 ? chunk : chunk.subarray(0, nl);
    total += take.length;
    if (total > max) return null;
    parts.push(take.slice());
    if (nl >= 0) break;
  }
  const line = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    line.set(p, off);
    off += p.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(line));
  } catch {
    return null;
  }
}
