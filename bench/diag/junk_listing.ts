/**
 * A hostile listing (docs/retrieval.md, "Listing bounds"), measured: `thinimage fetch` of an
 * image whose prefix holds PAGES pages of 1,000 junk keys (~930 bytes each) then `1.tar`, served
 * by a loopback fake (tests/helpers/junk_listing.ts). Prints wall time, peak RSS (GNU time),
 * stderr lines and the pages and GETs served, for any checkout's CLI, so two revisions compare
 * side by side:
 *
 *   deno run -A bench/diag/junk_listing.ts [--main PATH/src/main.ts] [--pages 300] [-- FLAGS...]
 *
 * FLAGS go to `fetch` (default `--quiet`), e.g. `-- --quiet --max-keys 400000 --max-pages 400`.
 * @module
 */
import { parseArgs } from "node:util";
import { runCli, startJunkListing } from "../../tests/helpers/junk_listing.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { main: { type: "string" }, pages: { type: "string", default: "300" } },
  allowPositionals: true,
});
const main = values.main ?? new URL("../../src/main.ts", import.meta.url).pathname;
const listing = startJunkListing({ pages: Number(values.pages) });
const dir = await Deno.makeTempDir({ prefix: "thinimage-junk-" });
try {
  const flags = positionals.length ? positionals : ["--quiet"];
  const r = await runCli(main, listing, dir, ["fetch", listing.image, ...flags]);
  console.log(JSON.stringify({
    main,
    pages: Number(values.pages),
    flags,
    exit: r.code,
    seconds: r.seconds,
    maxRssMiB: r.maxRssMiB,
    stderrLines: r.stderrLines,
    firstLine: r.stderr.split("\n")[0].slice(0, 200),
    pagesServed: listing.pages,
    getsServed: listing.gets,
  }));
} finally {
  await listing.close();
  await Deno.remove(dir, { recursive: true });
}
