/**
 * One contract for every Catalogue: SQLite's `Catalog` (what the agent uses) and the in-memory
 * one (what the machine tests use), so that the machines' tests see the catalogue they would see
 * in production.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { openStore } from "../../src/store/db.ts";
import { Catalog } from "../../src/store/catalog.ts";
import { MemoryCatalogue } from "../../src/image/memory_catalogue.ts";
import type { CatalogManifest, Catalogue, ChainRecord } from "../../src/image/catalogue.ts";

type Listing = Catalogue & { listChains(): ChainRecord[] };

const CATALOGUES: Record<string, (now: () => number) => { c: Listing; done(): void }> = {
  sqlite(now) {
    const dir = Deno.makeTempDirSync({ prefix: "thinimage-catalogue-test-" });
    const store = openStore(`${dir}/thinimage.db`);
    return {
      c: new Catalog(store, now),
      done() {
        store.close();
        Deno.removeSync(dir, { recursive: true });
      },
    };
  },
  memory: (now) => ({ c: new MemoryCatalogue(now), done() {} }),
};

/** Register `fn` as one test per catalogue, with a clock the test sets. */
function contract(name: string, fn: (c: Listing, clock: { t: number }) => void): void {
  for (const [kind, open] of Object.entries(CATALOGUES)) {
    Deno.test(`${kind} catalogue: ${name}`, () => {
      const clock = { t: 1 };
      const t = open(() => clock.t);
      try {
        fn(t.c, clock);
      } finally {
        t.done();
      }
    });
  }
}

const manifest = (digest: string, keys = ["1.tar", "2.tar"]): CatalogManifest => ({
  image: "golang",
  digest,
  // Listed out of order: the catalogue keeps them by index.
  layers: keys.map((key, i) => ({ index: i, key, size: 10 + i, etag: `e${i}` })).reverse(),
});

contract("a manifest is recorded once per digest; a new digest resets the layers", (c, clock) => {
  assertEquals(c.getImage("golang"), undefined);
  const first = c.recordManifest(manifest("d1"));
  assertEquals({ ...first, manifest: undefined }, {
    name: "golang",
    manifestDigest: "d1",
    manifest: undefined,
    state: "pulling",
    topChain: null,
    error: null,
    createdAt: 1,
    updatedAt: 1,
    layers: [
      { idx: 0, key: "1.tar", size: 10, etag: "e0", sha256: null, chainId: null },
      { idx: 1, key: "2.tar", size: 11, etag: "e1", sha256: null, chainId: null },
    ],
  });
  assertEquals(first.manifest, manifest("d1"));
  clock.t = 2;
  c.setLayerDigests("golang", [{ idx: 1, sha256: "s1", chainId: "c1" }]);
  c.setLayerDigests("nobody", [{ idx: 0, sha256: "s", chainId: "c" }]);
  c.markReady("golang", "c1");
  // The same digest keeps the row, its state and its digests.
  clock.t = 3;
  const same = c.recordManifest(manifest("d1"));
  assertEquals([same.state, same.topChain, same.updatedAt], ["ready", "c1", 2]);
  assertEquals(same.layers.map((l) => [l.sha256, l.chainId]), [[null, null], ["s1", "c1"]]);
  assertEquals(c.getImage("golang"), same);
  // A new digest: pulling again, from new layers, the creation time kept.
  const next = c.recordManifest(manifest("d2", ["1.tar", "2b.tar", "3.tar"]));
  assertEquals([next.state, next.topChain, next.createdAt, next.updatedAt], [
    "pulling",
    null,
    1,
    3,
  ]);
  assertEquals(next.layers.map((l) => [l.key, l.sha256]), [
    ["1.tar", null],
    ["2b.tar", null],
    ["3.tar", null],
  ]);
});

contract("ready and failed: the state, the error and the time", (c, clock) => {
  c.recordManifest(manifest("d1"));
  clock.t = 5;
  c.markFailed("golang", "refused");
  let img = c.getImage("golang")!;
  assertEquals([img.state, img.error, img.updatedAt], ["failed", "refused", 5]);
  clock.t = 6;
  c.markReady("golang", "top");
  img = c.getImage("golang")!;
  assertEquals([img.state, img.error, img.topChain, img.updatedAt], ["ready", null, "top", 6]);
  c.markReady("nobody", "top");
  assertEquals(c.getImage("nobody"), undefined);
});

contract("a chain is begun once, sealed once, and its device is its own", (c, clock) => {
  const spec = { chainId: "c1", parentChainId: null, layerSha256: "s1", device: "dev-1" };
  assertEquals(c.beginChain(spec), {
    ...spec,
    state: "applying",
    unpackedBytes: null,
    createdAt: 1,
    sealedAt: null,
  });
  clock.t = 2;
  c.sealChain("c1", 4096);
  clock.t = 3;
  // Begun again (a restarted transition): the sealed chain is left as it is.
  const again = c.beginChain({ ...spec, device: "dev-other" });
  assertEquals([again.state, again.device, again.unpackedBytes, again.sealedAt], [
    "sealed",
    "dev-1",
    4096,
    2,
  ]);
  assertThrows(() => c.beginChain({ ...spec, chainId: "c2" }), Error);
  assertEquals(c.getChain("c2"), undefined);
  c.beginChain({ chainId: "c0", parentChainId: "c1", layerSha256: "s0", device: "dev-0" });
  c.beginChain({ chainId: "b", parentChainId: "c1", layerSha256: "sb", device: "dev-b" });
  assertEquals(c.listChains().map((x) => x.chainId), ["c1", "b", "c0"]);
  assertEquals(c.getChain("missing"), undefined);
});

contract("an activation is kept by name until deleted, and its device is its own", (c, clock) => {
  const a = { name: "web", image: "golang", manifestDigest: "d1", chainId: "c1", device: "act" };
  assertEquals(c.addActivation(a), { ...a, createdAt: 1 });
  clock.t = 2;
  assertEquals(c.addActivation({ ...a, image: "node" }), { ...a, createdAt: 1 });
  assertThrows(() => c.addActivation({ ...a, name: "api" }), Error);
  assertEquals(c.getActivation("api"), undefined);
  c.deleteActivation("web");
  c.deleteActivation("web");
  assertEquals(c.getActivation("web"), undefined);
  assertEquals(c.addActivation({ ...a, name: "api" }).createdAt, 2);
});

contract("records handed out are copies", (c) => {
  c.recordManifest(manifest("d1"));
  const img = c.getImage("golang")!;
  img.state = "ready";
  img.layers[0].sha256 = "x";
  img.manifest.layers.length = 0;
  const stored = c.getImage("golang")!;
  assertEquals([stored.state, stored.layers[0].sha256, stored.manifest.layers.length], [
    "pulling",
    null,
    2,
  ]);
  c.beginChain({ chainId: "c1", parentChainId: null, layerSha256: "s", device: "d" }).state =
    "sealed";
  assertEquals(c.getChain("c1")!.state, "applying");
  assert(c.listChains().every((x) => x.state === "applying"));
});
