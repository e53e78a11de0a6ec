/**
 * A hostile listing (issue 13): an image prefix stuffed with pages of junk keys. The CLI runs
 * as a separate process against a loopback fake (tests/helpers/junk_listing.ts), under GNU
 * time: the listing is refused after the key limit's worth of pages, stderr carries one line
 * (not one per key), and memory stays flat when the limits are raised to let it through.
 * Before issue 13: 300 pages took 32 s and 768 MiB here and printed 300,000 warnings.
 */
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { runCli, startJunkListing } from "../helpers/junk_listing.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

async function withListing(
  opts: { pages: number; keysPerPage?: number },
  fn: (l: ReturnType<typeof startJunkListing>, dir: string) => Promise<void>,
) {
  const listing = startJunkListing(opts);
  const dir = await Deno.makeTempDir({ prefix: "thinimage-junk-" });
  try {
    await fn(listing, dir);
  } finally {
    await listing.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("300 pages of junk keys: refused (65) after the key limit, one stderr line, no GET", async () => {
  await withListing({ pages: 300 }, async (listing, dir) => {
    const r = await runCli(MAIN, listing, dir, ["fetch", listing.image, "--quiet"]);
    assertEquals(r.code, 65, r.stderr);
    assertStringIncludes(r.stderr, 'image junk: more than 10000 keys under "images/junk/"');
    assertEquals(r.stderrLines, 1, r.stderr);
    assertEquals(listing.pages, 11, "10,000 keys are 10 pages; the 11th passes the limit");
    assertEquals(listing.gets, 0);
    assert(r.seconds < 20, `${r.seconds} s`);
  });
});

Deno.test("junk let through by raised limits: one summary line, flat memory, the layer fetched", async () => {
  await withListing({ pages: 40 }, async (listing, dir) => {
    const args = ["fetch", listing.image, "--max-keys", "100000", "--max-pages", "50"];
    const quiet = await runCli(MAIN, listing, dir, [...args, "--quiet"]);
    assertEquals(quiet.code, 0, quiet.stderr);
    assertEquals(quiet.stderrLines, 1, quiet.stderr);
    assertStringIncludes(quiet.stderr, "junk: ignored 40000 key(s) that are not layers");
    assert(quiet.stderr.length < 500, "the summary names the start of three keys only");
    assert(quiet.maxRssMiB < 300, `peak RSS ${quiet.maxRssMiB} MiB`);
    assertEquals(listing.gets, 1);
    const human = await runCli(MAIN, listing, dir, [...args]);
    assertEquals(human.code, 0, human.stderr);
    assert(human.stderrLines <= 5, human.stderr);
  });
});

Deno.test("a server that hands out page after page: refused (65) at the page limit", async () => {
  await withListing({ pages: 1000, keysPerPage: 1 }, async (listing, dir) => {
    const r = await runCli(MAIN, listing, dir, ["fetch", listing.image, "--max-pages", "30"]);
    assertEquals(r.code, 65, r.stderr);
    assertStringIncludes(r.stderr.split("\n")[0], "more than 30 pages");
    assertEquals(listing.pages, 30);
  });
});
