/**
 * Fail fast and say why (issue 13), on a real kernel: a pool too small for an image is refused
 * with 75 and the figures before anything is downloaded, and the default pull policy activates
 * an image pulled here without any S3 request and without loading the S3 client.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";

Deno.test("a pool too small for the image: 75 with the figures, before the first download", async () => {
  const sc = await Scenario.create("1M");
  try {
    const r = await sc.cli(["activate", "golang", "--json"]);
    assertEquals(r.code, 75, `${r.stdout}\n${r.stderr}`);
    const first = r.stderr.split("\n")[0];
    assert(first.startsWith(`error: pool ${sc.pool} has no room for golang:`), first);
    assertStringIncludes(first, "free space with 'thinimage rm IMAGE' and 'thinimage gc'");
    const d = r.json.error.details;
    assert(d.bytes > d.freeBytes - d.floorBytes, JSON.stringify(d));
    assertEquals(r.json.error.runs.map((x: { machine: string }) => x.machine), [
      "activate",
      "pull",
    ]);
    assertEquals(await sc.query("SELECT sha256 FROM blobs"), [], "nothing downloaded");
    assertEquals(await sc.query("SELECT name FROM thin_devices"), [], "nothing made");
  } finally {
    await sc.teardown();
  }
});

Deno.test("activate --pull: missing uses the image here with no S3 request and no S3 client", async () => {
  const sc = await Scenario.create("1G");
  try {
    const p = await sc.cli(["pull", "golang", "--json"]);
    assertEquals(p.code, 0, p.stderr);
    // An endpoint this process may not even reach: the default policy never asks it.
    const warm = await sc.cli([
      "activate",
      "golang",
      "--name",
      "w1",
      "--verbose",
      "--json",
      "--endpoint",
      "http://127.0.0.1:9",
    ]);
    assertEquals(warm.code, 0, warm.stderr);
    assert(!warm.stderr.includes("loading the S3 client"), warm.stderr);
    await sc.assertActivationMatches("w1", "golang");
    // 'always' lists first: the S3 client is loaded (so its absence above means something).
    const always = await sc.cli(["activate", "golang", "--name", "w2", "--pull", "always", "-v"]);
    assertEquals(always.code, 0, always.stderr);
    assertStringIncludes(always.stderr, "loading the S3 client");
    // 'never' on an image not pulled here: says what to run.
    const never = await sc.cli(["activate", "node", "--pull", "never"]);
    assertEquals(never.code, 69, never.stderr);
    assertStringIncludes(never.stderr.split("\n")[0], "run 'thinimage pull node' first");
    await sc.assertConsistent();
  } finally {
    await sc.teardown();
  }
});
