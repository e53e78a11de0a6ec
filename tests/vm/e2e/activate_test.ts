/**
 * End to end, on a real kernel: the CLI (as child processes with the launcher's permissions)
 * against the loopback S3 server and a loop-backed thin pool. Runs inside the VM only.
 */
import { assert, assertEquals } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";

const IMAGES = ["golang", "node", "python"];

/** How many `chain` runs made their chain (a run that found it sealed made nothing). */
async function unpacks(sc: Scenario): Promise<number> {
  const rows = await sc.query(
    "SELECT response FROM runs WHERE machine = 'chain' AND status = 'done'",
  );
  return rows.filter((r) => JSON.parse(String(r.response)).unpacked).length;
}

/** Sum of blob sizes the `blob` runs downloaded, and how many such runs there were. */
async function downloads(
  sc: Scenario,
): Promise<{ runs: number; downloaded: number; bytes: number }> {
  const rows = await sc.query(
    "SELECT response FROM runs WHERE machine = 'blob' AND status = 'done'",
  );
  let downloaded = 0;
  let bytes = 0;
  for (const r of rows) {
    const res = JSON.parse(String(r.response));
    if (res.downloaded) {
      downloaded++;
      bytes += res.size;
    }
  }
  return { runs: rows.length, downloaded, bytes };
}

Deno.test("cold activate of three images: trees match, layers are shared, a second run does nothing twice", async () => {
  const sc = await Scenario.create("1G");
  try {
    const first: Record<string, { path: string; thinId: number }> = {};
    for (const img of IMAGES) {
      const r = await sc.activate(img);
      assertEquals(r.json.image, img);
      assertEquals(r.json.path, `/dev/mapper/thinimage-act-${img}`);
      assert(r.json.created);
      first[img] = r.json;
    }
    for (const img of IMAGES) await sc.assertActivationMatches(img, img);
    await sc.assertConsistent();

    // Bytes downloaded are the unique bytes: one download per distinct object.
    const blobs = await sc.query("SELECT sha256, size FROM blobs");
    const layers = await sc.query("SELECT image, sha256, size FROM image_layers");
    const unique = new Map(layers.map((l) => [l.sha256, Number(l.size)]));
    assertEquals(blobs.length, unique.size);
    const d = await downloads(sc);
    const uniqueBytes = [...unique.values()].reduce((a, b) => a + b, 0);
    const naiveBytes = layers.reduce((n, l) => n + Number(l.size), 0);
    assertEquals(d.downloaded, unique.size);
    assertEquals(d.bytes, uniqueBytes);

    // Chains: one per distinct prefix (5 + 2 + 1 + ... for the bucket's shape), each unpacked once.
    const chains = await sc.query("SELECT chain_id, unpacked_bytes FROM chains");
    assertEquals(await unpacks(sc), chains.length, "a chain was unpacked more than once");
    const distinctChains = new Set(
      (await sc.query("SELECT chain_id FROM image_layers")).map((r) => r.chain_id),
    );
    assertEquals(chains.length, distinctChains.size);

    const unpacked = chains.reduce((n, c) => n + Number(c.unpacked_bytes), 0);
    const perImage = await sc.query(
      "SELECT SUM(c.unpacked_bytes) AS b FROM image_layers l JOIN chains c ON c.chain_id = l.chain_id GROUP BY l.image",
    );
    const naiveUnpacked = perImage.reduce((n, r) => n + Number(r.b), 0);
    const pool = (await sc.cli(["pool", "status", "--json"])).json;
    const used = Number(pool.status?.dataUsedBytes ?? pool.dataUsedBytes);
    console.log(
      `sharing: downloaded ${uniqueBytes} B of ${naiveBytes} B listed (naive ${
        (naiveBytes / uniqueBytes).toFixed(2)
      }x); pool data used ${used} B for ${unpacked} B unique unpacked (${
        (used / unpacked).toFixed(3)
      }x; naive sum ${naiveUnpacked} B, ${(naiveUnpacked / unpacked).toFixed(2)}x)`,
    );
    assert(naiveBytes > uniqueBytes * 1.5, "the fixture should share layers like the bucket");

    // Second run: same activations back, nothing fetched, nothing unpacked.
    for (const img of IMAGES) {
      const r = await sc.activate(img);
      assertEquals(r.json.created, false);
      assertEquals(r.json.path, first[img].path);
      assertEquals(r.json.thinId, first[img].thinId);
      const p = await sc.cli(["pull", img, "--json"]);
      assertEquals(p.code, 0, p.stderr);
      for (const l of p.json.layers) {
        assertEquals([l.key, l.downloaded, l.unpacked], [l.key, false, false]);
      }
    }
    assertEquals((await downloads(sc)).downloaded, unique.size);
    assertEquals(await unpacks(sc), chains.length);

    // A second name on a ready image is a new snapshot of the same top chain.
    const other = await sc.activate("golang", "golang-2");
    assert(other.json.thinId !== first.golang.thinId);
    await sc.assertActivationMatches("golang-2", "golang");
  } finally {
    await sc.teardown();
  }
});

Deno.test("offline: a ready image activates without the network; an unknown one fails with 69", async () => {
  const sc = await Scenario.create("1G");
  try {
    await sc.activate("node");
    const off = await sc.cli(["activate", "node", "--name", "node-off", "--offline", "--json"]);
    assertEquals(off.code, 0, off.stderr);
    await sc.assertActivationMatches("node-off", "node");
    // An unreachable endpoint: the ready image still activates, with a warning.
    const down = await sc.cli(
      ["activate", "node", "--name", "node-down", "--json", "--endpoint", "http://127.0.0.1:9"],
    );
    assertEquals(down.code, 0, down.stderr);
    assert(/unreachable|local copy/.test(down.stderr), down.stderr);
    const unknown = await sc.cli(["activate", "python", "--offline", "--json"]);
    assertEquals(unknown.code, 69, unknown.stderr);
    await sc.assertConsistent();
  } finally {
    await sc.teardown();
  }
});

Deno.test("a hostile layer 3 is refused with 65; layers 1-2 stay usable and nothing is half made", async () => {
  const sc = await Scenario.create("1G");
  try {
    const bad = await sc.cli(["activate", "hostile", "--json"]);
    assertEquals(bad.code, 65, `${bad.stdout}\n${bad.stderr}`);
    assert(/escape|\.\./.test(bad.stdout + bad.stderr), "the refusal names the entry");
    const chains = await sc.query("SELECT chain_id, state FROM chains");
    assertEquals(chains.filter((c) => c.state !== "sealed"), []);
    assertEquals(await sc.query("SELECT name FROM activations"), []);
    const img = await sc.query("SELECT state FROM images WHERE name = 'hostile'");
    assertEquals(img.map((r) => r.state), ["failed"]);
    // golang shares layers 1-2 with it: they are fetched already and unpacked now, once.
    const before = (await sc.query("SELECT resource_id FROM runs WHERE machine = 'blob'")).length;
    await sc.activate("golang");
    await sc.assertActivationMatches("golang", "golang");
    const blobRuns = await sc.query(
      "SELECT response FROM runs WHERE machine = 'blob' AND status = 'done'",
    );
    const fetchedAgain = blobRuns.slice(before).filter((r) =>
      JSON.parse(String(r.response)).downloaded
    );
    assertEquals(fetchedAgain.length, 3, "only golang's own layers 3-5 are downloaded");
    await sc.assertConsistent();
  } finally {
    await sc.teardown();
  }
});

Deno.test("four processes activating overlapping images download each blob once and unpack each chain once", async () => {
  const sc = await Scenario.create("1G");
  try {
    const plan = [["golang", "g1"], ["node", "n1"], ["python", "p1"], ["node", "n2"]];
    const procs = plan.map(([img, name]) => sc.spawn(["activate", img, "--name", name, "--json"]));
    const outs = await Promise.all(procs.map((p) => p.output()));
    outs.forEach((o, i) =>
      assertEquals(o.code, 0, `${plan[i].join(" ")}: ${new TextDecoder().decode(o.stderr)}`)
    );
    const blobs = await sc.query("SELECT sha256 FROM blobs");
    assertEquals((await downloads(sc)).downloaded, blobs.length, "a blob was downloaded twice");
    const chains = await sc.query("SELECT chain_id FROM chains");
    assertEquals(await unpacks(sc), chains.length, "a chain was unpacked twice");
    for (const [img, name] of plan) await sc.assertActivationMatches(name, img);
    await sc.assertConsistent();
  } finally {
    await sc.teardown();
  }
});
