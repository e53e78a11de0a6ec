/**
 * Stopping a real CLI process with a real signal: wait until it is provably in the middle of
 * its work, send the signal, and measure how long it took to exit.
 * @module
 */
import { assert } from "./assert.ts";

/** How a signalled process ended. */
export interface Stopped {
  code: number;
  signal: Deno.Signal | null;
  /** Milliseconds from the signal to the process's exit. */
  stopMs: number;
  stdout: string;
  stderr: string;
}

/**
 * Poll `ready` (every 20 ms, up to `timeoutMs`) while `child` runs; then send `sig` and wait
 * for the exit. Fails when the child ends before it was ready (the work was too short to
 * interrupt, which would prove nothing).
 */
export async function interruptWhen(
  child: Deno.ChildProcess,
  ready: () => boolean | Promise<boolean>,
  { sig = "SIGTERM" as Deno.Signal, timeoutMs = 60_000 } = {},
): Promise<Stopped> {
  let exited = false;
  const output = child.output().finally(() => exited = true);
  const deadline = performance.now() + timeoutMs;
  while (!(await ready())) {
    if (exited || performance.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      const out = await output.catch(() => undefined);
      const err = out ? new TextDecoder().decode(out.stderr) : "";
      assert(false, `the process ${exited ? "ended" : "was not ready"} before the signal: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert(!exited, "the process ended before the signal");
  const t0 = performance.now();
  child.kill(sig);
  const out = await output;
  const stopMs = performance.now() - t0;
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stopMs,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Whether process `pid` has `path` open (read from /proc). */
export function hasOpen(pid: number, path: string): boolean {
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`) === path) return true;
      } catch { /* closed meanwhile */ }
    }
  } catch { /* exited */ }
  return false;
}
