/**
 * `thinimage daemon` on a real kernel: it serves activations of an image pulled here (real
 * devices, the image's tree), the client pulls what is not; killed, it changes nothing for
 * its clients; a new one takes over its stale socket; SIGTERM stops it with exit 75. Runs
 * inside the VM only.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";
import { socketPath } from "../../../src/daemon/protocol.ts";

/** A daemon process and what it has logged so far. */
interface Daemon {
  proc: Deno.ChildProcess;
  log: () => string;
  /** Resolves when its stderr ends. */
  drained: Promise<void>;
}

/**
 * Start a daemon on the scenario's state directory and wait until it says it listens (a dead
 * one's socket may be there already, and the tests may not connect to it themselves).
 */
async function startDaemon(sc: Scenario): Promise<Daemon> {
  const proc = sc.spawn(["daemon"]);
  let text = "";
  const drained = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  proc.stdout.cancel();
  const d = { proc, log: () => text, drained };
  for (let i = 0; i < 600; i++) {
    if (text.includes("serving ")) return d;
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill("SIGKILL");
  throw new Error(`the daemon did not listen within 60 s: ${text}`);
}

/** Stop a daemon with `sig` and return its exit code and log. */
async function stopDaemon(d: Daemon, sig: Deno.Signal) {
  d.proc.kill(sig);
  const st = await d.proc.status;
  await d.drained;
  return { code: st.code, signal: st.signal, log: d.log() };
}

Deno.test("daemon: serves warm activations, leaves pulls to the client, dies harmlessly", async () => {
  const sc = await Scenario.create("1G");
  let daemon: Daemon | undefined;
  try {
    const pulled = await sc.cli(["pull", "golang"]);
    assertEquals(pulled.code, 0, pulled.stderr);
    daemon = await startDaemon(sc);

    // A new name of the image pulled here: the daemon makes it; the same name again finds it.
    const d1 = await sc.activate("golang", "d1");
    assertEquals((d1.json as { created: boolean }).created, true);
    await sc.assertActivationMatches("d1", "golang");
    const again = await sc.cli(["activate", "golang", "--name", "d1", "--json"]);
    assertEquals(again.code, 0, again.stderr);
    assertEquals((again.json as { device: string }).device, (d1.json as { device: string }).device);
    // An image not pulled here: the client pulls and activates it itself.
    await sc.activate("node", "n1");
    await sc.assertActivationMatches("n1", "node");
    // A usage error is answered as the CLI answers it.
    const bad = await sc.cli(["activate", "golang", "--name", "-x"]);
    assertEquals(bad.code, 2, bad.stderr);

    // Killed outright: its socket is left behind, and clients do the work themselves.
    const killed = await stopDaemon(daemon, "SIGKILL");
    daemon = undefined;
    const served = killed.log.split("\n").filter((l) => l.includes("activate"));
    assertEquals(served.length, 3, killed.log);
    assert(served[0].includes("--name d1") && served[0].includes("exit 0"), served[0]);
    assert(served[1].includes("--name d1") && served[1].includes("exit 0"), served[1]);
    assert(served[2].includes("--name -x") && served[2].includes("exit 2"), served[2]);
    assert(Deno.statSync(socketPath(sc.dir)).isSocket, "a killed daemon leaves its socket");
    await sc.activate("golang", "d2");
    await sc.assertActivationMatches("d2", "golang");

    // A new daemon takes the stale socket over and serves; SIGTERM stops it with 75.
    daemon = await startDaemon(sc);
    await sc.activate("golang", "d3");
    const stopped = await stopDaemon(daemon, "SIGTERM");
    daemon = undefined;
    assertEquals([stopped.code, stopped.signal], [75, null], stopped.log);
    assertStringIncludes(stopped.log, "--name d3 --json: exit 0");
    assertEquals(stopped.log.includes("--name d2"), false, "d2 was made by its client");
    let gone = false;
    try {
      Deno.statSync(socketPath(sc.dir));
    } catch {
      gone = true;
    }
    assert(gone, "the socket is removed when the daemon stops");
    await sc.assertConsistent();
  } finally {
    if (daemon) await stopDaemon(daemon, "SIGKILL").catch(() => {});
    await sc.teardown();
  }
});
