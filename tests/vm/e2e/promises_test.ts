/**
 * The promises of README and docs/ that need devices, each through the CLI with the product's
 * flags, in one scenario (a pool costs seconds under emulation): SIGTERM stops `activate` and
 * `pull` (exit 75 within 2 s, resumable, no temporary file); `--no-wait` exits 75 beside a
 * process doing the same work; `deactivate` removes the device; `rm` and `gc` remove chain
 * devices from the kernel and blob files from disk; a pool whose devices went (a reboot: files
 * and SQLite kept) is set up again by the next command. Runs inside the VM only.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { interruptWhen } from "../../helpers/signal.ts";
import { startFaultProxy } from "../../../scripts/fault-proxy.ts";
import { Scenario, sh } from "./helpers.ts";

/**
 * README's "a second or two" is for a host (tests/cli/signals_test.ts holds commands to 2 s
 * there); under software emulation a process's own exit path costs several times as much.
 */
const STOP_MS = 5000;
const ANON = { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };

async function live(device: string): Promise<boolean> {
  return (await sh("/usr/sbin/dmsetup", "ls")).split("\n").some((l) =>
    l.split(/\s+/)[0] === device
  );
}

async function blobFiles(sc: Scenario): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(`${sc.dir}/blobs/sha256`))).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Chain devices only `image` uses (by SQLite), with their blobs. */
async function ownOf(sc: Scenario, image: string) {
  const rows = await sc.query(
    `SELECT c.device, l.sha256 FROM image_layers l JOIN chains c ON c.chain_id = l.chain_id
     WHERE l.image = '${image}' AND l.chain_id NOT IN
       (SELECT chain_id FROM image_layers WHERE image != '${image}')`,
  );
  return { devices: rows.map((r) => String(r.device)), blobs: rows.map((r) => String(r.sha256)) };
}

Deno.test("SIGTERM stops activate and pull, --no-wait, deactivate, rm and gc, and a pool set up again after a reboot", async () => {
  const sc = await Scenario.create("1G");
  let stall = true;
  const proxy = startFaultProxy({
    upstream: sc.s3.endpoint,
    fault: (req) =>
      stall && req.method === "GET" && /\/images\/node\/4\.tar(\?|$)/.test(req.path)
        ? { kind: "stall", afterBytes: 64 << 10 }
        : undefined,
  });
  sc.extraNetHosts.push(new URL(proxy.url).host);
  const via = ["--endpoint", proxy.url];
  const stalls = () => proxy.requests.filter((r) => r.fault === "stall").length;
  try {
    const g1 = (await sc.activate("golang", "g1")).json;

    // activate node, held in its layer-4 download: a second process's --no-wait exits 75 at
    // once; then SIGTERM stops the first within 2 s, with 75.
    const a = sc.spawn(["activate", "node", "--name", "n1", ...via], ANON);
    let noWait: Awaited<ReturnType<Scenario["cli"]>> | undefined;
    const ra = await interruptWhen(a, async () => {
      if (stalls() === 0) return false;
      noWait ??= await sc.cli(["pull", "node", "--no-wait", ...via], ANON);
      return true;
    }, { timeoutMs: 300_000 });
    assertEquals(noWait!.code, 75, `--no-wait: ${noWait!.stderr}`);
    assertStringIncludes(noWait!.stderr, "--no-wait");
    console.log(`activate: stopped ${Math.round(ra.stopMs)} ms after SIGTERM, exit ${ra.code}`);
    assertEquals([ra.code, ra.signal], [75, null], ra.stderr);
    assert(ra.stopMs < STOP_MS, `activate took ${Math.round(ra.stopMs)} ms to stop`);

    // pull, held likewise: SIGTERM, 75 within 2 s.
    const before = stalls();
    const p = sc.spawn(["pull", "node", ...via], ANON);
    const rp = await interruptWhen(p, () => stalls() > before, { timeoutMs: 300_000 });
    console.log(`pull: stopped ${Math.round(rp.stopMs)} ms after SIGTERM, exit ${rp.code}`);
    assertEquals([rp.code, rp.signal], [75, null], rp.stderr);
    assert(rp.stopMs < STOP_MS, `pull took ${Math.round(rp.stopMs)} ms to stop`);

    // Both resume: the next activation finishes, and nothing half-made or temporary is left.
    stall = false;
    const n1 = await sc.cli(["activate", "node", "--name", "n1", "--json", ...via], ANON);
    assertEquals(n1.code, 0, n1.stderr);
    await sc.assertActivationMatches("n1", "node");
    await sc.assertConsistent();

    // deactivate: the device leaves the kernel and the activation leaves SQLite.
    assert(await live("thinimage-act-n1"));
    const d = await sc.cli(["deactivate", "n1", "--json"]);
    assertEquals(d.code, 0, d.stderr);
    assertEquals(await live("thinimage-act-n1"), false, "the activation's device is still live");
    assertEquals(await sc.query("SELECT name FROM activations WHERE name = 'n1'"), []);
    assertEquals(await live("thinimage-act-g1"), true, "another activation went too");

    // rm: node's own chain devices leave the pool (status compares every thin id with
    // SQLite) and its own blobs leave the disk.
    const node = await ownOf(sc, "node");
    assert(node.devices.length > 0 && node.blobs.length > 0, "node has layers of its own");
    const rm = await sc.cli(["rm", "node", "--json"]);
    assertEquals(rm.code, 0, rm.stderr);
    assertEquals(
      rm.json.gc.chains.map((c: { device: string }) => c.device).sort(),
      [
        ...node.devices,
      ].sort(),
    );
    for (const b of node.blobs) assert(!(await blobFiles(sc)).includes(b), `blob ${b} left`);
    await sc.assertConsistent();

    // gc alone: python pulled, then forgotten the way rm forgets an image (a rm killed before
    // its own collection leaves exactly this); gc removes its chain devices and blobs.
    const py = await sc.cli(["pull", "python", "--json"]);
    assertEquals(py.code, 0, py.stderr);
    const python = await ownOf(sc, "python");
    assert(python.devices.length > 0, "python has chains of its own");
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(`${sc.dir}/thinimage.db`);
    db.exec("PRAGMA foreign_keys = ON");
    db.prepare("DELETE FROM image_layers WHERE image = 'python'").run();
    db.prepare("DELETE FROM images WHERE name = 'python'").run();
    db.close();
    const gc = await sc.cli(["gc", "--json"]);
    assertEquals(gc.code, 0, gc.stderr);
    assertEquals(
      gc.json.chains.map((c: { device: string }) => c.device).sort(),
      [
        ...python.devices,
      ].sort(),
    );
    const left = await blobFiles(sc);
    for (const b of python.blobs) assert(!left.includes(b), `blob ${b} left`);
    assertEquals(
      (await sc.query(`SELECT device FROM chains`)).filter((r) =>
        python.devices.includes(String(r.device))
      ),
      [],
    );
    await sc.assertConsistent();

    // A reboot: every device-mapper device and loop device of this pool goes; files and
    // SQLite stay. The next command sets the pool up again, and the activation is the same.
    const first = await sc.query("SELECT name, device, chain_id FROM activations");
    // Thin devices of this pool first (their tables name the pool's device number), then it.
    const poolDev = (await sh(
      "/usr/sbin/dmsetup",
      "info",
      "-c",
      "--noheadings",
      "--separator",
      ":",
      "-o",
      "major,minor",
      sc.pool,
    )).trim();
    for (const line of (await sh("/usr/sbin/dmsetup", "table")).split("\n")) {
      const m = /^(\S+): \d+ \d+ thin (\S+) /.exec(line);
      if (m && m[2] === poolDev) await sh("/usr/sbin/dmsetup", "remove", m[1]);
    }
    await sh("/usr/sbin/dmsetup", "remove", sc.pool);
    for (const line of (await sh("/usr/sbin/losetup", "-a")).split("\n")) {
      if (line.includes(sc.dir)) await sh("/usr/sbin/losetup", "-d", line.split(":")[0]);
    }
    assertEquals(await live(sc.pool), false);
    const again = await sc.cli(["activate", "golang", "--name", "g1", "--offline", "--json"]);
    assertEquals(again.code, 0, again.stderr);
    assert(await live(sc.pool), "the pool was not set up again");
    assertEquals(await sc.query("SELECT name, device, chain_id FROM activations"), first);
    assertEquals([again.json.path, again.json.thinId], [g1.path, g1.thinId]);
    await sc.assertActivationMatches("g1", "golang");
    const st = await sc.cli(["pool", "status", "--json"]);
    assertEquals(st.code, 0, st.stderr);
    await sc.assertConsistent();
  } finally {
    await proxy.close();
    await sc.teardown();
  }
});
