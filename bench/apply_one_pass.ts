/**
 * Pull's unpack step alone, for bench/tar.ts and bench/vm.ts: apply a blob already validated at
 * fetch (one pass through the same reader and rules) onto a directory, as `src/agent/effects.ts`
 * does. Pull passes the identity the blob file had when its digest was verified at download
 * (so it is not hashed again while untouched) and the whiteouts validation counted; the
 * benchmark verified the digest at set-up and nothing has touched the file since, so its
 * identity now is that identity. Run with the product's permission flags.
 *
 *   deno run <flags> bench/apply_one_pass.ts LAYER DIR SHA256 [WHITEOUTS]
 * @module
 */
import { applyLayer } from "../src/tar/apply.ts";
import { fileIdentity } from "../src/host/file_identity.ts";

const [layer, dir, sha256, whiteouts] = Deno.args;
if (!layer || !dir || !sha256) {
  console.error("usage: apply_one_pass.ts LAYER DIR SHA256 [WHITEOUTS]");
  Deno.exit(2);
}
const r = await applyLayer(layer, dir, {
  validated: true,
  expectedSha256: sha256,
  verifiedIdentity: fileIdentity(Deno.statSync(layer)),
  whiteouts: whiteouts === undefined ? undefined : Number(whiteouts),
  noCrossMounts: true,
});
console.log(JSON.stringify({ entries: r.entries, sha256: r.sha256 }));
