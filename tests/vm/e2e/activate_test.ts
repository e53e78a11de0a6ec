/**
 * End to end, on a real kernel: the CLI (as child processes with the launcher's permissions)
 * against the loopback S3 server and a loop-backed thin pool. Runs inside the VM only.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";

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

Deno.test("hostile image refused, then four processes at once, then warm, offline and rm", async () => {
  const sc = await Scenario.create("1G");
  try {
    // A hostile layer 3: refused with 65, naming the entry. Layers 1-2 are unpacked while it
    // downloads (sealed chains, golang's too); nothing is made for layer 3 or half made.
    const bad = await sc.cli(["activate", "hostile", "--json"]);
    assertEquals(bad.code, 65, `${bad.stdout}\n${bad.stderr}`);
    assert(/escape|\.\./.test(bad.stdout + bad.stderr), "the refusal names the entry");
    const made = await sc.query(
      "SELECT l.idx, c.state FROM image_layers l JOIN chains c ON c.chain_id = l.chain_id WHERE l.image = 'hostile' ORDER BY l.idx",
    );
    assertEquals(made.map((r) => `${r.idx} ${r.state}`), ["1 sealed", "2 sealed"]);
    assertEquals(
      (await sc.query("SELECT chain_id FROM chains")).length,
      2,
      "nothing made for layer 3",
    );
    assertEquals(await sc.query("SELECT machine FROM runs WHERE status = 'active'"), []);
    assertEquals(await sc.query("SELECT name FROM activations"), []);
    assertEquals(
      (await sc.query("SELECT state FROM images WHERE name = 'hostile'")).map((r) => r.state),
      ["failed"],
    );

    // Four processes, overlapping images: each blob downloaded once, each chain unpacked once.
    const plan = [["golang", "g1"], ["node", "n1"], ["python", "p1"], ["node", "n2"]];
    const outs = await Promise.all(
      plan.map(([img, name]) => sc.spawn(["activate", img, "--name", name, "--json"]).output()),
    );
    outs.forEach((o, i) =>
      assertEquals(o.code, 0, `${plan[i].join(" ")}: ${new TextDecoder().decode(o.stderr)}`)
    );
    const first = outs.map((o) => JSON.parse(new TextDecoder().decode(o.stdout)));
    for (const [img, name] of plan) await sc.assertActivationMatches(name, img);

    const blobs = await sc.query("SELECT sha256, size FROM blobs");
    const d = await downloads(sc);
    assertEquals(d.downloaded, blobs.length, "a blob was downloaded twice");
    const layers = await sc.query("SELECT image, sha256, size, chain_id FROM image_layers");
    const unique = new Map(layers.map((l) => [l.sha256, Number(l.size)]));
    assertEquals(blobs.length, unique.size);
    const uniqueBytes = [...unique.values()].reduce((a, b) => a + b, 0);
    assertEquals(d.bytes, uniqueBytes);
    const chains = await sc.query("SELECT chain_id, unpacked_bytes FROM chains");
    assertEquals(await unpacks(sc), chains.length, "a chain was unpacked twice");
    // hostile's layers 1-2 are golang's: their chains exist once, made for the good images.
    const good = layers.filter((l) => l.image !== "hostile");
    assertEquals(chains.length, new Set(good.map((l) => l.chain_id)).size);

    const naiveBytes = good.reduce((n, l) => n + Number(l.size), 0);
    const goodBytes = [...new Map(good.map((l) => [l.sha256, Number(l.size)])).values()]
      .reduce((a, b) => a + b, 0);
    const unpacked = chains.reduce((n, c) => n + Number(c.unpacked_bytes), 0);
    const perImage = await sc.query(
      "SELECT SUM(c.unpacked_bytes) AS b FROM image_layers l JOIN chains c ON c.chain_id = l.chain_id WHERE l.image != 'hostile' GROUP BY l.image",
    );
    const naiveUnpacked = perImage.reduce((n, r) => n + Number(r.b), 0);
    const pool = (await sc.cli(["pool", "status", "--json"])).json;
    const used = Number(pool?.status?.dataUsedBytes ?? pool?.dataUsedBytes);
    console.log(
      `sharing: downloaded ${goodBytes} B for ${naiveBytes} B listed (naive ${
        (naiveBytes / goodBytes).toFixed(2)
      }x); pool data used ${used} B for ${unpacked} B unique unpacked (${
        (used / unpacked).toFixed(2)
      }x; naive ${naiveUnpacked} B, ${(naiveUnpacked / unpacked).toFixed(2)}x)`,
    );
    assert(naiveBytes > goodBytes * 1.5, "the fixture should share layers like the bucket");

    // Warm: the same (image, name) returns the same device; a pull finds everything done.
    const runsBefore = await sc.query("SELECT COUNT(*) AS n FROM runs");
    const again = await sc.activate("golang", "g1");
    assertEquals(again.json.created, false);
    // A live activation is answered by reading, without a run (and without loading the engine).
    assertEquals(await sc.query("SELECT COUNT(*) AS n FROM runs"), runsBefore);
    assertEquals([again.json.path, again.json.thinId], [first[0].path, first[0].thinId]);
    // g1 is golang's: node under that name is the command line's mistake (2), nothing made.
    const taken = await sc.cli(["activate", "node", "--name", "g1"]);
    assertEquals(taken.code, 2, taken.stderr);
    assertStringIncludes(taken.stderr, "activation name 'g1' is taken by image golang");
    // (Rows come with a null prototype: compare the values.)
    const g1 = await sc.query("SELECT image FROM activations WHERE name = 'g1'");
    assertEquals(g1.map((r) => r.image), ["golang"]);
    const p = await sc.cli(["pull", "node", "--json"]);
    assertEquals(p.code, 0, p.stderr);
    for (const l of p.json.layers) {
      assertEquals([l.key, l.downloaded, l.unpacked], [l.key, false, false]);
    }
    assertEquals((await downloads(sc)).downloaded, blobs.length);
    assertEquals(await unpacks(sc), chains.length);

    // Offline: a ready image activates without the network; an unknown one is 69.
    const off = await sc.cli(["activate", "python", "--name", "p-off", "--offline", "--json"]);
    assertEquals(off.code, 0, off.stderr);
    await sc.assertActivationMatches("p-off", "python");
    // An unreachable source: --pull always falls back to the local copy, with a warning (the
    // endpoint is allowed, so the request is made and refused).
    const down = await sc.cli(
      ["activate", "node", "--name", "n-down", "--json", "--pull", "always"],
      { THINIMAGE_BUCKET: "no-such-bucket-here" },
    );
    assertEquals(down.code, 0, down.stderr);
    assert(/unreachable|local copy/.test(down.stderr), down.stderr);
    const unknown = await sc.cli(["activate", "gzipped", "--offline", "--json"]);
    assertEquals(unknown.code, 69, unknown.stderr);
    await sc.assertConsistent();

    // rm: refused while activated; the hostile image's own blob goes with it.
    const busy = await sc.cli(["rm", "golang"]);
    assertEquals(busy.code, 75, busy.stderr); // not bad input: it works once deactivated
    assert(/in use by activation.*deactivate/.test(busy.stderr.split("\n")[0]), busy.stderr);
    assert(
      (await sc.cli(["ls", "--json"])).json.images.some((i: { name: string }) =>
        i.name === "golang"
      ),
    );
    const rm = await sc.cli(["rm", "hostile", "--json"]);
    assertEquals(rm.code, 0, rm.stderr);
    assertEquals(rm.json.gc.chains, []);
    assertEquals(rm.json.gc.blobs.length, 1, "only hostile's layer 3 was its own");
    assertEquals((await sc.query("SELECT sha256 FROM blobs")).length, blobs.length - 1);
  } finally {
    await sc.teardown();
  }
});
