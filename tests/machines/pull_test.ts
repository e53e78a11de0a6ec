/**
 * The image machines' decisions, on the host: a real engine on the in-memory run store and
 * catalogue (each held to SQLite's semantics by its contract test: tests/engine/run_store_test.ts,
 * tests/image/catalogue_test.ts), with an in-memory world behind the ImageEffects interface (a
 * bucket, a blob store, a pool that records what was made). No database, no files. What the kernel
 * does with those calls is proven in the VM (tests/vm/e2e); here: what is called, in which order,
 * how often, and what is refused.
 */
import { isPermanentByDefault } from "../../src/engine/errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../helpers/assert.ts";
import { createHash } from "node:crypto";
import { MemoryCatalogue } from "../../src/image/memory_catalogue.ts";
import { MemoryRunStore } from "../../src/engine/memory_store.ts";
import { Engine } from "../../src/engine/engine.ts";
import type { ImageEffects } from "../../src/machines/effects.ts";
import {
  blobMachine,
  chainMachine,
  type ChainRequest,
  pullMachine,
} from "../../src/machines/pull.ts";
import { activateMachine } from "../../src/machines/activate.ts";
import { buildManifest, type ListedObject } from "../../src/image/manifest.ts";
import {
  ConflictError,
  InvalidInputError,
  SourceUnavailableError,
  TemporaryError,
  ThinimageError,
} from "../../src/errors.ts";
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
  /** Activation devices whose name a foreign live device holds (activateDevice refuses). */
  foreign = new Set<string>();
  /** What the pull did, in order, by layer content: `fetch`, `stored`, `validate`, `chain`. */
  log: string[] = [];
  /** Downloads of these contents wait until released (or their signal aborts). */
  held = new Map<string, PromiseWithResolvers<void>>();
  inFlight = 0;
  maxInFlight = 0;
  /** Bytes the pool can still take; a pull needing more is refused before downloading. */
  room = Infinity;
  roomChecks: number[] = [];
  listings = 0;

  constructor(bucket: Bucket) {
    this.bucket = bucket;
  }

  hold(...contents: string[]): void {
    for (const c of contents) this.held.set(c, Promise.withResolvers());
  }

  release(...contents: string[]): void {
    for (const c of contents) this.held.get(c)?.resolve();
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

function setup(world: World, opts: { offline?: boolean } = {}) {
  const catalog = new MemoryCatalogue();
  // One process: every run is this engine's own, so liveness is never asked about another.
  const engine = new Engine(new MemoryRunStore(), {
    owner: "test/0/1/1",
    liveness: { status: () => "alive" },
  });
  const blobsBySha = new Map<string, string>();
  const shaByEtag = new Map<string, string>();
  const fx: ImageEffects = {
    catalog,
    offline: opts.offline ?? false,
    resolve(image) {
      world.listings++;
      if (!world.reachable) return Promise.reject(new SourceUnavailableError("connection refused"));
      return Promise.resolve(buildManifest(image, `images/${image}/`, world.listing(image)));
    },
    checkRoom(_image, layers) {
      const bytes = layers.reduce((n, l) => n + l.size, 0);
      world.roomChecks.push(bytes);
      if (bytes > world.room) {
        return Promise.reject(new TemporaryError(`no room: ${bytes} > ${world.room}`));
      }
      return Promise.resolve();
    },
    async fetchBlob(layer, signal) {
      // As the real effects: a stored blob is not downloaded. Stored means committed, so two
      // overlapping calls for one blob both download, and both count (the bytes take a
      // timer's turn to arrive, as over a network, so calls do overlap).
      const known = shaByEtag.get(layer.etag);
      if (known) return { sha256: known, size: layer.size, downloaded: false };
      const [, image, n] = /^images\/([^/]+)\/(\d+)\.tar$/.exec(layer.key)!;
      const content = world.bucket[image][Number(n) - 1];
      world.log.push(`fetch ${content}`);
      world.maxInFlight = Math.max(world.maxInFlight, ++world.inFlight);
      try {
        const gate = world.held.get(content)?.promise;
        if (gate) {
          await new Promise<void>((resolve, reject) => {
            signal.addEventListener("abort", () => reject(signal.reason), { once: true });
            gate.then(resolve);
          });
        }
        await new Promise((r) => setTimeout(r, 1));
      } finally {
        world.inFlight--;
      }
      world.log.push(`stored ${content}`);
      world.fetched.push(layer.key);
      const h = sha(content);
      blobsBySha.set(h, content);
      shaByEtag.set(layer.etag, h);
      return { sha256: h, size: layer.size, downloaded: true };
    },
    validateBlob(h) {
      world.log.push(`validate ${blobsBySha.get(h)}`);
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
    activateDevice(d) {
      world.calls.push(`activate ${d}`);
      if (world.foreign.has(d)) {
        return Promise.reject(new ConflictError(`a device named ${d} is live, not ours`));
      }
      return Promise.resolve(`/dev/mapper/${d}`);
    },
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
    // As src/agent/effects.ts: the parent's signal interrupts the child run.
    async child<Req, Res>(
      m: Machine<Req, Res, string, string>,
      id: string,
      req: Req,
      signal: AbortSignal,
    ) {
      if (m.name === "chain") {
        world.log.push(`chain ${blobsBySha.get((req as ChainRequest).layerSha256)}`);
      }
      return await (await engine.start(m, id, req, { signal })).wait({ signal });
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
    pull: async (image: string, signal?: AbortSignal) =>
      await (await engine.start(pull, image, { image }, { signal })).wait(),
    activate: async (image: string, name = image, pull?: "missing" | "always" | "never") =>
      await (await engine.start(activate, name, { image, name, pull })).wait(),
  };
}

const BUCKET: Bucket = {
  golang: ["base1", "base2", "base3", "go4", "go5"],
  node: ["base1", "base2", "base3", "deps4", "node5"],
  python: ["base1", "base2", "base3", "deps4", "py5"],
  hostile: ["base1", "base2", "evil3"],
  hostile5: ["base1", "base2", "evil3", "x4", "x5"],
};

/** Wait until `cond` holds (the pull runs meanwhile); fail after 5 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (const end = Date.now() + 5_000; !cond();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Every chain run was started after its layer was validated. */
function assertValidatedFirst(log: string[]): void {
  for (const [i, e] of log.entries()) {
    if (!e.startsWith("chain ")) continue;
    const c = e.slice("chain ".length);
    assert(log.slice(0, i).includes(`validate ${c}`), `chain ${c} before its validation: ${log}`);
  }
}

Deno.test("shared layers: each blob fetched once, each chain made once, in layer order", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
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
});

Deno.test("three pulls at once sharing layers 1-3: each blob downloaded once, each chain made once", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
  await Promise.all(["golang", "node", "python"].map((img) => t.pull(img)));
  const downloads = world.log.filter((e) => e.startsWith("stored "));
  assertEquals(downloads.length, 8, downloads.join(" "));
  assertEquals(new Set(downloads).size, 8, downloads.join(" "));
  const made = world.calls.filter((c) => c.startsWith("base") || c.startsWith("snap"));
  assertEquals(made.length, 8, made.join("\n"));
});

Deno.test("pulling a ready, unchanged image fetches and makes nothing", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
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
});

Deno.test("a hostile layer 3 refuses the image (65) with only layers 1-2 made", async () => {
  const world = new World(BUCKET);
  world.hostile.add("evil3");
  const t = setup(world);
  const err = await assertRejects(() => t.pull("hostile"));
  assertEquals((err as ThinimageError).exitCode, 65);
  assertEquals(world.devices.size, 2, "the chains of base1 and base2, for other images");
  assertEquals(t.catalog.getImage("hostile")!.state, "failed");
  await t.pull("golang");
  assertEquals(world.fetched.length, 6, "golang fetches only its layers 3-5");
});

Deno.test("a pool without room for the listed layers refuses (75) before the first download", async () => {
  const world = new World(BUCKET);
  const total = world.listing("golang").reduce((n, l) => n + l.size, 0);
  world.room = total - 1;
  const t = setup(world);
  const err = await assertRejects(() => t.pull("golang"));
  assertEquals((err as ThinimageError).exitCode, 75);
  assertStringIncludes((err as Error).message, `no room: ${total} >`);
  assertEquals(world.fetched, [], "nothing downloaded");
  assertEquals(world.devices.size, 0, "nothing made");
  world.room = Infinity;
  await t.pull("golang");
  assertEquals(world.roomChecks, [total, total], "checked before each attempt's downloads");
});

Deno.test("unreachable source: a ready image is used with a warning; an unknown one is 69", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
  await t.pull("node");
  world.reachable = false;
  const r = await t.pull("node");
  assert(r.offline);
  assert(world.calls.some((c) => c.startsWith("warn source unreachable")));
  const err = await assertRejects(() => t.pull("golang"));
  assertEquals((err as ThinimageError).exitCode, 69);
  // Reachable, but the image is gone from the bucket: 69 too, and the local copy does not
  // stand in (the source answered; it is not unreachable).
  world.reachable = true;
  world.bucket = { golang: BUCKET.golang }; // a copy: BUCKET is shared by every test
  const gone = await assertRejects(() => t.pull("node"));
  assertEquals((gone as ThinimageError).exitCode, 69);
  assertStringIncludes((gone as Error).message, "not in the bucket");
  assertEquals(world.calls.filter((c) => c.startsWith("warn source unreachable")).length, 1);
  const offline = setup(new World(BUCKET), { offline: true });
  const refused = await assertRejects(() => offline.pull("node"));
  assertEquals((refused as ThinimageError).exitCode, 69);
});

Deno.test("a retried apply starts again from a fresh snapshot of the parent", async () => {
  const world = new World(BUCKET);
  world.failApplyOnce.add("go4");
  const t = setup(world);
  await t.pull("golang");
  const top = t.catalog.getImage("golang")!.topChain!;
  assertEquals(world.devices.get(t.catalog.getChain(top)!.device)!.layers, BUCKET.golang);
  assertEquals(world.calls.filter((c) => c.startsWith("remove")).length, 1);
});

Deno.test("activate: the same (image, name) returns the activation; another image under the name is a usage error (2)", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
  const a = await t.activate("node", "web");
  assert(a.created);
  const b = await t.activate("node", "web");
  assertEquals([b.created, b.device, b.path], [false, a.device, a.path]);
  const err = await assertRejects(() => t.activate("golang", "web"));
  assertEquals((err as ThinimageError).exitCode, 2);
  assertStringIncludes((err as Error).message, "name 'web' is taken by image node");
  const snaps = world.calls.filter((c) => c.startsWith(`snap ${a.device}`));
  assertEquals(snaps.length, 1);
});

Deno.test("activate --pull: missing uses an image pulled here without listing; always lists; never is offline", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
  // Not here yet: 'missing' pulls (one listing).
  await t.activate("node", "a", "missing");
  assertEquals(world.listings, 1);
  // Here: 'missing' neither lists nor starts a pull run, even with the source gone.
  world.reachable = false;
  const b = await t.activate("node", "b", "missing");
  assertEquals([world.listings, b.created], [1, true]);
  assertEquals(b.chainId, t.catalog.getImage("node")!.topChain);
  // 'always' lists first.
  world.reachable = true;
  await t.activate("node", "c", "always");
  assertEquals(world.listings, 2);
  // A run without the field (recorded before it existed) pulls first, as it did then.
  await t.activate("node", "d");
  assertEquals(world.listings, 3);
  // 'missing' with an image not here: it is pulled.
  await t.activate("golang", "e", "missing");
  assertEquals(world.listings, 4);
});

Deno.test("activate: a foreign device under the activation's name fails at once (exit 1), not after 8 attempts", async () => {
  const world = new World(BUCKET);
  const t = setup(world);
  world.foreign.add("thinimage-act-web");
  const err = await assertRejects(() => t.activate("node", "web"));
  assertEquals((err as ThinimageError).exitCode, 1);
  assertStringIncludes((err as Error).message, "is live, not ours");
  assert(!(err as Error).message.includes("gave up"), (err as Error).message);
  assertEquals(world.calls.filter((c) => c === "activate thinimage-act-web").length, 1);
});

Deno.test("overlap: chains 1-2 are made while blob 3 still downloads", async () => {
  const world = new World(BUCKET);
  world.hold("base3", "go4", "go5");
  const t = setup(world);
  const pulling = t.pull("golang");
  try {
    await until(() => world.log.includes("chain base2"), "the chain of layer 2");
    const chains = t.catalog.listChains();
    assertEquals(chains.map((c) => c.state), ["sealed", "sealed"]);
    assert(!world.log.includes("stored base3"), world.log.join(", "));
    assertEquals(world.log.filter((e) => e.startsWith("fetch ")), [
      "fetch base1",
      "fetch base2",
      "fetch base3",
      "fetch go4",
    ]);
    world.release("base3", "go4", "go5");
    const r = await pulling;
    assertValidatedFirst(world.log);
    // The response is what it was when the steps ran one after the other.
    const img = t.catalog.getImage("golang")!;
    assertEquals(r.topChain, img.topChain);
    assertEquals(r.topChain, r.layers[4].chainId);
    assertEquals(
      r.layers,
      img.layers.map((l) => ({
        index: l.idx,
        key: l.key,
        size: l.size,
        sha256: l.sha256!,
        downloaded: true,
        chainId: l.chainId!,
        unpacked: true,
      })),
    );
    const dev = t.catalog.getChain(r.topChain!)!.device;
    assertEquals(world.devices.get(dev)!.layers, BUCKET.golang);
  } finally {
    world.release(...world.held.keys());
    await pulling.catch(() => {});
  }
});

Deno.test("at most 2 downloads in flight, started in layer order", async () => {
  const world = new World(BUCKET);
  world.hold(...BUCKET.golang);
  const t = setup(world);
  const pulling = t.pull("golang");
  try {
    await until(() => world.inFlight === 2, "two downloads");
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(world.log, ["fetch base1", "fetch base2"]);
    // The second finishing first frees a slot for the third, not a chain (layer 1 is missing).
    world.release("base2");
    await until(() => world.log.includes("fetch base3"), "download 3");
    assert(!world.log.some((e) => e.startsWith("chain ")), world.log.join(", "));
    for (const c of ["base1", "base3", "go4", "go5"]) {
      world.release(c);
      await new Promise((r) => setTimeout(r, 5));
    }
    await pulling;
    assertEquals(world.maxInFlight, 2);
    assertEquals(
      world.log.filter((e) => e.startsWith("fetch ")),
      BUCKET.golang.map((c) => `fetch ${c}`),
    );
  } finally {
    world.release(...world.held.keys());
    await pulling.catch(() => {});
  }
});

Deno.test("a hostile layer 3 of 5: layers 1-2 sealed, nothing started for 3-5, no run left active", async () => {
  const world = new World(BUCKET);
  world.hostile.add("evil3");
  world.hold("x4");
  const t = setup(world);
  let settled = false;
  const pulling = t.pull("hostile5").finally(() => settled = true);
  try {
    await until(() => world.log.includes("validate evil3"), "the refusal of layer 3");
    await until(() => t.catalog.listChains().length === 2, "the chains of layers 1-2");
    // The download of layer 4 is in flight: the pull waits for it, leaving no run behind.
    await new Promise((r) => setTimeout(r, 20));
    assert(!settled, "the pull ended with a download of its own still running");
    world.release("x4");
    const err = await assertRejects(() => pulling);
    assertEquals((err as ThinimageError).exitCode, 65);
    assertStringIncludes((err as Error).message, "climbs out");
    assertEquals(t.catalog.listChains().map((c) => c.state), ["sealed", "sealed"]);
    assertEquals(world.log.filter((e) => e.startsWith("chain ")), ["chain base1", "chain base2"]);
    const chainRuns = t.engine.store.list({ limit: 100 }).filter((r) => r.machine === "chain");
    assertEquals(chainRuns.length, 2);
    assertEquals(world.log.filter((e) => e.startsWith("validate ")), [
      "validate base1",
      "validate base2",
      "validate evil3",
    ]);
    assertValidatedFirst(world.log);
    for (const m of ["pull", "blob", "chain"]) assertEquals(t.engine.store.active(m), [], m);
    const img = t.catalog.getImage("hostile5")!;
    assertEquals(img.state, "failed");
    // Layers 1-2 stay recorded, so that gc keeps their chains for other images.
    assert(img.layers.slice(0, 3).every((l) => l.sha256 && l.chainId));
  } finally {
    world.release(...world.held.keys());
    await pulling.catch(() => {});
  }
});

Deno.test("a pull interrupted mid-pipeline resumes: nothing downloaded or made twice", async () => {
  const world = new World(BUCKET);
  world.hold("go4", "go5");
  const t = setup(world);
  const stop = new AbortController();
  const first = t.pull("golang", stop.signal);
  try {
    await until(() => world.log.includes("chain base3"), "the chain of layer 3");
    await until(() => t.catalog.listChains().every((c) => c.state === "sealed"), "its seal");
    stop.abort(new Error("SIGINT"));
    await assertRejects(() => first);
    // The interrupted downloads stay active runs, taken over by the next pull.
    assertEquals(t.engine.store.active("blob").length, 2);
    world.release("go4", "go5");
    const r = await t.pull("golang");
    assertEquals(world.fetched.length, 5, world.log.join("\n"));
    assertEquals(world.log.filter((e) => e.startsWith("chain ")).length, 5);
    assertEquals(r.layers.map((l) => l.unpacked), [false, false, false, true, true]);
    assertEquals(world.devices.get(t.catalog.getChain(r.topChain!)!.device)!.layers, BUCKET.golang);
    for (const m of ["pull", "blob", "chain"]) assertEquals(t.engine.store.active(m), [], m);
  } finally {
    world.release(...world.held.keys());
    await first.catch(() => {});
  }
});

Deno.test("a missing Deno permission halts a run at once: it would be refused 8 times over", () => {
  assert(
    isPermanentByDefault(new Deno.errors.NotCapable('Requires net access to "s3.amazonaws.com"')),
  );
  assert(!isPermanentByDefault(new Error("device busy")));
});
