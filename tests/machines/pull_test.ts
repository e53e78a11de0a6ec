/**
 * The image machines' decisions, on the host: a real engine, run store and catalogue (SQLite
 * files), with an in-memory world behind the ImageEffects interface (a bucket, a blob store,
 * a pool that records what was made). What the kernel does with those calls is proven in the
 * VM (tests/vm/e2e); here: what is called, in which order, how often, and what is refused.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { openStore, type Store } from "../../src/store/db.ts";
import { Catalog } from "../../src/store/catalog.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";
import { Engine } from "../../src/engine/engine.ts";
import { LockLiveness, OwnerLock } from "../../src/host/process.ts";
import type { ImageEffects } from "../../src/machines/effects.ts";
import { blobMachine, chainMachine, pullMachine } from "../../src/machines/pull.ts";
import { activateMachine } from "../../src/machines/activate.ts";
import { buildManifest, type ListedObject } from "../../src/image/manifest.ts";
import { InvalidInputError, SourceUnavailableError, ThinimageError } from "../../src/errors.ts";
import type { Machine } from "../../src/engine/machine.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** Objects of a fake bucket: image -> layer contents (the content stands for the bytes). */
type Bucket = Record<string, string[]>;

class World {
  bucket: Bucket;
  reachable = true;
  hostile = new Set<string>();
  fetched: string[] = [];
  devices = new Map<string, { origin?: string; layers: string[] }>();
  calls: string[] = [];
  failApplyOnce = new Set<string>();

  constructor(bucket: Bucket) {
    this.bucket = bucket;
  }

  listing(image: string): ListedObject[] {
    return (this.bucket[image] ?? []).map((content, i) => ({
      key: `images/${image}/${i + 1}.tar`,
      size: content.length,
      etag: createHash("md5").update(content).digest("hex"),
      lastModified: "2026-01-01T00:00:00Z",
    }));
  }
}

async function setup(world: World, opts: { offline?: boolean } = {}) {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-machines-" });
  const store: Store = openStore(join(dir, "thinimage.db"));
  const catalog = new Catalog(store);
  const engine = new Engine(new SqliteRunStore(store), {
    owner: OwnerLock.acquire(join(dir, "owners")).owner,
    liveness: new LockLiveness(join(dir, "owners")),
  });
  const blobsBySha = new Map<string, string>();
  const shaByEtag = new Map<string, string>();
  const fx: ImageEffects = {
    catalog,
    offline: opts.offline ?? false,
    resolve(image) {
      if (!world.reachable) return Promise.reject(new SourceUnavailableError("connection refused"));
      return Promise.resolve(buildManifest(image, `images/${image}/`, world.listing(image)));
    },
    fetchBlob(layer) {
      const known = shaByEtag.get(layer.etag);
      if (known) return Promise.resolve({ sha256: known, size: layer.size, downloaded: false });
      const [, image, n] = /^images\/([^/]+)\/(\d+)\.tar$/.exec(layer.key)!;
      const content = world.bucket[image][Number(n) - 1];
      world.fetched.push(layer.key);
      const h = sha(content);
      blobsBySha.set(h, content);
      shaByEtag.set(layer.etag, h);
      return Promise.resolve({ sha256: h, size: layer.size, downloaded: true });
    },
    validateBlob(h) {
      if (world.hostile.has(blobsBySha.get(h)!)) {
        return Promise.reject(new InvalidInputError(`layer refused: entry '../escape' climbs out`));
      }
      return Promise.resolve();
    },
    deviceExists: (d) => Promise.resolve(world.devices.has(d)),
    createBaseDevice(d) {
      world.calls.push(`base ${d}`);
      world.devices.set(d, { layers: [] });
      return Promise.resolve();
    },
    createSnapshot(d, origin) {
      world.calls.push(`snap ${d} ${origin}`);
      const o = world.devices.get(origin);
      if (!o) return Promise.reject(new ThinimageError(`no origin ${origin}`));
      world.devices.set(d, { origin, layers: [...o.layers] });
      return Promise.resolve();
    },
    removeDevice(d) {
      world.calls.push(`remove ${d}`);
      world.devices.delete(d);
      return Promise.resolve();
    },
    activateDevice: (d) => Promise.resolve(`/dev/mapper/${d}`),
    thinIdOf: (d) => [...world.devices.keys()].indexOf(d),
    applyLayer(d, h) {
      world.calls.push(`apply ${d}`);
      const content = blobsBySha.get(h)!;
      world.devices.get(d)!.layers.push(content);
      if (world.failApplyOnce.delete(content)) {
        return Promise.reject(new Error("device busy (transient)"));
      }
      return Promise.resolve({ unpackedBytes: content.length });
    },
    async child<Req, Res>(m: Machine<Req, Res, string, string>, id: string, req: Req) {
      return await (await engine.start(m, id, req)).wait();
    },
    hasActiveRun: (m, id) => engine.store.active(m).some((r) => r.resourceId === id),
    warn: (msg) => world.calls.push(`warn ${msg}`),
    info: () => {},
    progress: () => () => {},
  };
  const blob = blobMachine(fx);
  const chain = chainMachine(fx);
  const pull = pullMachine(fx, blob, chain);
  const activate = activateMachine(fx, pull);
  for (const m of [blob, chain, pull, activate]) engine.register(m);
  return {
    catalog,
    engine,
    pull: async (image: string) => await (await engine.start(pull, image, { image })).wait(),
    activate: async (image: string, name = image) =>
      await (await engine.start(activate, name, { image, name })).wait(),
    async close() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const BUCKET: Bucket = {
  golang: ["base1", "base2", "base3", "go4", "go5"],
  node: ["base1", "base2", "base3", "deps4", "node5"],
  python: ["base1", "base2", "base3", "deps4", "py5"],
  hostile: ["base1", "base2", "evil3"],
};

Deno.test("shared layers: each blob fetched once, each chain made once, in layer order", async () => {
  const world = new World(BUCKET);
  const t = await setup(world);
  try {
    for (const img of ["golang", "node", "python"]) await t.pull(img);
    assertEquals(world.fetched.length, 8, world.fetched.join(" "));
    const made = world.calls.filter((c) => c.startsWith("base") || c.startsWith("snap"));
    assertEquals(made.length, 8, "5 golang chains + node's 4, 5 + python's 5");
    assertEquals(made.filter((c) => c.startsWith("base")).length, 1);
    // Every chain device holds exactly its layers, in order.
    const top = t.catalog.getImage("python")!.topChain!;
    const dev = t.catalog.getChain(top)!.device;
    assertEquals(world.devices.get(dev)!.layers, BUCKET.python);
    for (const img of ["golang", "node", "python"]) {
      assertEquals(t.catalog.getImage(img)!.state, "ready");
    }
  } finally {
    await t.close();
  }
});

Deno.test("pulling a ready, unchanged image fetches and makes nothing", async () => {
  const world = new World(BUCKET);
  const t = await setup(world);
  try {
    await t.pull("golang");
    const before = world.calls.length;
    const again = await t.pull("golang");
    assertEquals(world.calls.length, before);
    assertEquals(world.fetched.length, 5);
    assert(again.layers.every((l) => !l.downloaded && !l.unpacked));
    // A changed layer 5 (new content, new ETag): only it is fetched and unpacked.
    world.bucket = { ...BUCKET, golang: [...BUCKET.golang.slice(0, 4), "go5-v2"] };
    await t.pull("golang");
    assertEquals(world.fetched.length, 6);
    assertEquals(world.calls.slice(before).filter((c) => c.startsWith("snap")).length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("a hostile layer 3 refuses the image (65) before any chain is made", async () => {
  const world = new World(BUCKET);
  world.hostile.add("evil3");
  const t = await setup(world);
  try {
    const err = await assertRejects(() => t.pull("hostile"));
    assertEquals((err as ThinimageError).exitCode, 65);
    assertEquals(world.devices.size, 0);
    assertEquals(t.catalog.getImage("hostile")!.state, "failed");
    await t.pull("golang");
    assertEquals(world.fetched.length, 6, "golang fetches only its layers 3-5");
  } finally {
    await t.close();
  }
});

Deno.test("unreachable source: a ready image is used with a warning; an unknown one is 69", async () => {
  const world = new World(BUCKET);
  const t = await setup(world);
  try {
    await t.pull("node");
    world.reachable = false;
    const r = await t.pull("node");
    assert(r.offline);
    assert(world.calls.some((c) => c.startsWith("warn source unreachable")));
    const err = await assertRejects(() => t.pull("golang"));
    assertEquals((err as ThinimageError).exitCode, 69);
  } finally {
    await t.close();
  }
  const offline = await setup(new World(BUCKET), { offline: true });
  try {
    const err = await assertRejects(() => offline.pull("node"));
    assertEquals((err as ThinimageError).exitCode, 69);
  } finally {
    await offline.close();
  }
});

Deno.test("a retried apply starts again from a fresh snapshot of the parent", async () => {
  const world = new World(BUCKET);
  world.failApplyOnce.add("go4");
  const t = await setup(world);
  try {
    await t.pull("golang");
    const top = t.catalog.getImage("golang")!.topChain!;
    assertEquals(world.devices.get(t.catalog.getChain(top)!.device)!.layers, BUCKET.golang);
    assertEquals(world.calls.filter((c) => c.startsWith("remove")).length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("activate: the same (image, name) returns the activation; another image under the name is 65", async () => {
  const world = new World(BUCKET);
  const t = await setup(world);
  try {
    const a = await t.activate("node", "web");
    assert(a.created);
    const b = await t.activate("node", "web");
    assertEquals([b.created, b.device, b.path], [false, a.device, a.path]);
    const err = await assertRejects(() => t.activate("golang", "web"));
    assertEquals((err as ThinimageError).exitCode, 65);
    const snaps = world.calls.filter((c) => c.startsWith(`snap ${a.device}`));
    assertEquals(snaps.length, 1);
  } finally {
    await t.close();
  }
});
