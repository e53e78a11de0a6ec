import { createHash } from "node:crypto";
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import {
  makeTar,
  publicSource,
  randomBytes,
  s3Env,
  tempFiles,
  tempState,
  uploadScratch,
} from "../helpers/s3.ts";
import { startFaultProxy } from "../../scripts/fault-proxy.ts";
import { fetchImage } from "../../src/retrieve/fetch_image.ts";
import { fetchLayer } from "../../src/retrieve/fetch_layer.ts";
import { resolveImage } from "../../src/retrieve/resolve.ts";
import { createSource } from "../../src/retrieve/source.ts";
import { BlobStore } from "../../src/blobs/store.ts";
import { openStore } from "../../src/store/db.ts";
import { InvalidInputError } from "../../src/errors.ts";

const downloaded = (r: { layers: { index: number; downloaded: boolean }[] }) =>
  r.layers.filter((l) => l.downloaded).map((l) => l.index);

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

Deno.test("fetch: shared layers are downloaded once, whichever image they came from", async () => {
  await using s = await tempState();
  const proxy = startFaultProxy({ upstream: s3Env().endpoint });
  const source = publicSource({ endpoint: proxy.url });
  try {
    const golang = await fetchImage(source, s.blobs, "golang");
    assertEquals(downloaded(golang), [1, 2, 3, 4, 5]);
    const node = await fetchImage(source, s.blobs, "node");
    assertEquals(downloaded(node), [4, 5], "1-3 come from golang's blobs");
    const python = await fetchImage(source, s.blobs, "python");
    assertEquals(downloaded(python), [5], "4 comes from node's blob");
    for (const r of [golang, node, python]) {
      for (const l of r.layers) {
        assertEquals(await sha256File(s.blobs.pathOf(l.sha256)), l.sha256, l.key);
        assertEquals(l.format, "tar");
      }
    }
    assertEquals(node.layers[0].sha256, golang.layers[0].sha256);
    assertEquals(s.blobs.list().length, 5 + 2 + 1);

    const before = proxy.requests.length;
    const again = await fetchImage(source, s.blobs, "node");
    assertEquals(downloaded(again), []);
    assertEquals(again.manifest.digest, node.manifest.digest);
    const after = proxy.requests.slice(before);
    assertEquals(after.length, 1, "an unchanged image costs one listing");
    assert(after[0].path.includes("list-type=2"));
    assertEquals(await tempFiles(s.dir), []);
  } finally {
    source.close();
    await proxy.close();
  }
});

Deno.test("fetch: a gzip-compressed layer is stored as gzip", async () => {
  await using s = await tempState();
  const source = publicSource();
  try {
    const r = await fetchImage(source, s.blobs, "gzipped");
    assertEquals(r.layers.map((l) => l.format), ["tar", "gzip"]);
    assertEquals(s.blobs.get(r.layers[1].sha256)?.format, "gzip");
  } finally {
    source.close();
  }
});

Deno.test("fetch: a blob in another format is refused with 65 and leaves nothing behind", async () => {
  await using s = await tempState();
  const zstd = randomBytes(300_000, 7);
  zstd.set([0x28, 0xb5, 0x2f, 0xfd]);
  const scratch = await uploadScratch({ "z/1.tar": zstd });
  const source = publicSource({ prefix: scratch.prefix });
  try {
    const err = await assertRejects(
      () => fetchImage(source, s.blobs, "z"),
      InvalidInputError,
      "zstd",
    );
    assertEquals(err.exitCode, 65);
    assertEquals(s.blobs.list(), []);
    assertEquals(await tempFiles(s.dir), []);
  } finally {
    source.close();
    await scratch.cleanup();
  }
});

Deno.test("fetch: the size cap refuses a blob before any GET", async () => {
  await using s = await tempState();
  const proxy = startFaultProxy({ upstream: s3Env().endpoint });
  const source = publicSource({ endpoint: proxy.url });
  try {
    const m = await resolveImage(source, "golang");
    const err = await assertRejects(
      () => fetchLayer(source, s.blobs, m.layers[0], { maxBytes: 1000 }),
      InvalidInputError,
      "over the 1000-byte limit",
    );
    assertEquals(err.exitCode, 65);
    assertEquals(
      proxy.requests.filter((r) => r.method === "GET" && !r.path.includes("list-type")),
      [],
    );
    assertEquals(await tempFiles(s.dir), []);
  } finally {
    source.close();
    await proxy.close();
  }
});

Deno.test("fetch: two processes fetching the same blob at once end with one verified blob", async () => {
  await using s = await tempState();
  const scratch = await uploadScratch({ "c/1.tar": makeTar({ big: randomBytes(2_000_000, 3) }) });
  const source = publicSource({ prefix: scratch.prefix });
  // A second connection to the same database and directory, as another process would have.
  const other = openStore(`${s.dir}/thinimage.db`);
  try {
    const m = await resolveImage(source, "c");
    const [a, b] = await Promise.all([
      fetchLayer(source, s.blobs, m.layers[0]),
      fetchLayer(source, new BlobStore(s.dir, other), m.layers[0]),
    ]);
    assertEquals(a.sha256, b.sha256);
    assertEquals(s.blobs.list().length, 1);
    assertEquals(await sha256File(s.blobs.pathOf(a.sha256)), a.sha256);
    assertEquals(await tempFiles(s.dir), []);
  } finally {
    other.close();
    source.close();
    await scratch.cleanup();
  }
});

Deno.test("fetch: the private bucket works with credentials", async () => {
  await using s = await tempState();
  const env = s3Env();
  const source = createSource({
    bucket: env.privateBucket,
    endpoint: env.endpoint,
    credentials: { accessKeyId: env.accessKey, secretAccessKey: env.secretKey },
  });
  try {
    const r = await fetchImage(source, s.blobs, "node");
    assertEquals(downloaded(r), [1, 2, 3, 4, 5]);
  } finally {
    source.close();
  }
});
