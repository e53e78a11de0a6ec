/**
 * Pull's unpack step alone, for bench/vm.ts: apply a blob already validated at fetch (one pass
 * through the same reader and rules, SHA-256 checked as it reads) onto a directory, as
 * `src/agent/effects.ts` does. Run with the product's permission flags.
 *
 *   deno run <flags> bench/apply_one_pass.ts LAYER DIR SHA256
 * @module
 */
import { applyLayer } from "../src/tar/apply.ts";

const [layer, dir, sha256] = Deno.args;
if (!layer || !dir || !sha256) {
  console.error("usage: apply_one_pass.ts LAYER DIR SHA256");
  Deno.exit(2);
}
const r = await applyLayer(layer, dir, { validated: true, expectedSha256: sha256 });
console.log(JSON.stringify({ entries: r.entries, sha256: r.sha256 }));
