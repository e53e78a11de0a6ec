// The gzip source inflates in bounded windows: no chunk grows with the compression ratio.
import { gzipSync } from "node:zlib";
import { assert, assertEquals } from "../helpers/assert.ts";
import { openLayerSource } from "../../src/tar/source.ts";
import { COST_BOUNDS } from "../../src/tar/limits.ts";

Deno.test("gzip of zeros: every chunk is at most ~1032 x the input window", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-source-test-" });
  try {
    const path = `${dir}/zeros.gz`;
    Deno.writeFileSync(path, gzipSync(new Uint8Array(64 << 20), { level: 9 }));
    const src = await openLayerSource(path, { sha256: true });
    let total = 0;
    let largest = 0;
    for (let c = await src.next(); c; c = await src.next()) {
      total += c.length;
      largest = Math.max(largest, c.length);
    }
    assertEquals(total, 64 << 20);
    assert(largest <= COST_BOUNDS.inflateInputBytes * 1040, `a chunk of ${largest} bytes`);
    assertEquals((await src.sha256())?.length, 64);
    src.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
