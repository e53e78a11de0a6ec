import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { makeTar, publicSource, s3Env, uploadScratch } from "../helpers/s3.ts";
import { startFaultProxy } from "../../scripts/fault-proxy.ts";
import { listRemoteImages, resolveImage } from "../../src/retrieve/resolve.ts";
import { InvalidInputError, NotInSourceError, SourceUnavailableError } from "../../src/errors.ts";

Deno.test("resolve: the fixture images mirror the bucket: five layers, 1-3 shared, 4 shared by node and python", async () => {
  const source = publicSource();
  try {
    const [g, n, p] = await Promise.all(
      ["golang", "node", "python"].map((i) => resolveImage(source, i)),
    );
    for (const m of [g, n, p]) {
      assertEquals(m.layers.map((l) => l.index), [1, 2, 3, 4, 5]);
      assertEquals(m.layers[0].key, `images/${m.image}/1.tar`);
      assert(m.digest.startsWith("sha256:"));
    }
    for (const i of [0, 1, 2]) {
      assertEquals(new Set([g, n, p].map((m) => m.layers[i].etag)).size, 1, `layer ${i + 1}`);
    }
    assertEquals(n.layers[3].etag, p.layers[3].etag);
    assert(g.layers[3].etag !== n.layers[3].etag);
    assert(n.layers[4].etag !== p.layers[4].etag);
  } finally {
    source.close();
  }
});

Deno.test("resolve: a listing of several pages is followed to the end, in as many requests", async () => {
  const proxy = startFaultProxy({ upstream: s3Env().endpoint });
  const source = publicSource({ endpoint: proxy.url });
  try {
    const m = await resolveImage(source, "python", { pageSize: 2 });
    assertEquals(m.layers.length, 5);
    assertEquals(proxy.requests.length, 3);
    assertEquals(proxy.requests.filter((r) => r.path.includes("continuation-token")).length, 2);
    assertEquals((await resolveImage(source, "python")).digest, m.digest);
  } finally {
    source.close();
    await proxy.close();
  }
});

Deno.test("resolve: a malformed listing on a real server is refused with 65 naming the key", async () => {
  const tar = makeTar({ f: "x" });
  const scratch = await uploadScratch({
    "gap/1.tar": tar,
    "gap/3.tar": tar,
    "zero/01.tar": tar,
    "upper/1.TAR": tar,
    "dir/1.tar/": new Uint8Array(0),
    "many/1.tar": tar,
    "many/2.tar": tar,
    "many/3.tar": tar,
    "extra/1.tar": tar,
    "extra/README": tar,
    "empty/README": tar,
  });
  const source = publicSource({ prefix: scratch.prefix });
  try {
    const cases: [string, string, string, number?][] = [
      ["gap", "gap in the layer numbering", "gap/2.tar"],
      ["zero", "malformed layer name", "zero/01.tar"],
      ["upper", "malformed layer name", "upper/1.TAR"],
      ["dir", "malformed layer name", "dir/1.tar/"],
      ["many", "beyond the limit of 2 layers", "many/3.tar", 2],
      ["empty", "no layers", "empty/"],
    ];
    for (const [image, message, key, maxLayers] of cases) {
      const err = await assertRejects(
        () => resolveImage(source, image, { maxLayers }),
        InvalidInputError,
        message,
      );
      assertEquals(err.details?.key, scratch.prefix + key);
      assertEquals(err.exitCode, 65);
    }
    // Nothing under the prefix: the bucket does not have the image (69), whatever it holds.
    const missing = await assertRejects(
      () => resolveImage(source, "nothing"),
      NotInSourceError,
      "not in the bucket",
    );
    assertEquals(missing.exitCode, 69);
    const m = await resolveImage(source, "extra");
    assertEquals(m.ignored, { count: 1, examples: [`${scratch.prefix}extra/README`] });
  } finally {
    source.close();
    await scratch.cleanup();
  }
});

Deno.test("resolve: a key with control characters, as the server lists it, is refused", async () => {
  const tar = makeTar({ f: "x" });
  const scratch = await uploadScratch({ "ctl/1.tar": tar, "ctl/2\u0001.tar": tar });
  const source = publicSource({ prefix: scratch.prefix });
  try {
    const err = await assertRejects(
      () => resolveImage(source, "ctl"),
      InvalidInputError,
      "control characters",
    );
    assertEquals(err.details?.key, `${scratch.prefix}ctl/2\u0001.tar`);
  } finally {
    source.close();
    await scratch.cleanup();
  }
});

Deno.test("resolve: an unknown bucket is 69", async () => {
  const env = s3Env();
  const { createSource } = await import("../../src/retrieve/source.ts");
  const source = createSource({
    bucket: "no-such-bucket-here",
    endpoint: env.endpoint,
    credentials: "anonymous",
  });
  try {
    const err = await assertRejects(
      () => resolveImage(source, "golang"),
      SourceUnavailableError,
      "no such bucket",
    );
    assertEquals(err.exitCode, 69);
  } finally {
    source.close();
  }
});

Deno.test("resolve: images --remote lists every image with its layers and size", async () => {
  const source = publicSource();
  try {
    const list = await listRemoteImages(source);
    const byName = Object.fromEntries(list.map((i) => [i.image, i]));
    for (const name of ["golang", "node", "python", "hostile", "gzipped"]) {
      assert(byName[name], name);
    }
    assertEquals(byName.golang.layers, 5);
    assertEquals(byName.gzipped.layers, 2);
    const golang = await resolveImage(source, "golang");
    assertEquals(byName.golang.size, golang.layers.reduce((n, l) => n + l.size, 0));
    assertEquals(byName.golang.digest, golang.digest);
  } finally {
    source.close();
  }
});
