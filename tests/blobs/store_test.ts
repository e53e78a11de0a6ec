import { createHash } from "node:crypto";
import { assertEquals } from "../helpers/assert.ts";
import { tempFiles, tempState } from "../helpers/s3.ts";
import { BlobStore } from "../../src/blobs/store.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

async function stage(blobs: Awaited<ReturnType<typeof tempState>>["blobs"], data: Uint8Array) {
  const t = await blobs.createTemp();
  await t.file.write(data);
  await t.file.sync();
  t.file.close();
  return t.path;
}

Deno.test("blob store: a committed blob is found by hash and by its object's ETag and size", async () => {
  await using s = await tempState();
  const data = new TextEncoder().encode("layer bytes");
  const h = sha(data);
  assertEquals(s.blobs.has(h), false);
  await s.blobs.commit(await stage(s.blobs, data), {
    sha256: h,
    size: data.length,
    format: "tar",
    source: { etag: md5(data), size: data.length, key: "images/a/1.tar" },
  });
  assertEquals(s.blobs.pathOf(h), `${s.dir}/blobs/sha256/${h}`);
  assertEquals(await Deno.readFile(s.blobs.pathOf(h)), data);
  assertEquals(s.blobs.has(h), true);
  assertEquals(s.blobs.findByEtag(md5(data), data.length), h);
  assertEquals(
    s.blobs.findByEtag(md5(data), data.length + 1),
    undefined,
    "size is part of the identity",
  );
  assertEquals(s.blobs.get(h)?.format, "tar");
  assertEquals(await tempFiles(s.dir), []);
});

Deno.test("blob store: opaque ETags never stand in for content", async () => {
  await using s = await tempState();
  const data = new TextEncoder().encode("x");
  await s.blobs.commit(await stage(s.blobs, data), {
    sha256: sha(data),
    size: 1,
    format: "tar",
    source: { etag: "v1", size: 1, key: "k" },
  });
  assertEquals(s.blobs.has(sha(data)), true);
  assertEquals(s.blobs.findByEtag("v1", 1), undefined);
});

Deno.test("blob store: a blob whose file disappeared is not counted", async () => {
  await using s = await tempState();
  const data = new TextEncoder().encode("gone soon");
  const h = sha(data);
  await s.blobs.commit(await stage(s.blobs, data), {
    sha256: h,
    size: data.length,
    format: "gzip",
    source: { etag: md5(data), size: data.length, key: "k" },
  });
  await Deno.remove(s.blobs.pathOf(h));
  assertEquals(s.blobs.has(h), false);
  assertEquals(s.blobs.findByEtag(md5(data), data.length), undefined);
});

Deno.test("blob store: committing the same bytes twice keeps one file and drops the second temp", async () => {
  await using s = await tempState();
  const data = new TextEncoder().encode("same");
  const blob = { sha256: sha(data), size: data.length, format: "tar" as const };
  const [a, b] = [await stage(s.blobs, data), await stage(s.blobs, data)];
  await Promise.all([s.blobs.commit(a, blob), s.blobs.commit(b, blob)]);
  assertEquals(s.blobs.list().length, 1);
  assertEquals(await tempFiles(s.dir), []);
  const files = [];
  for await (const e of Deno.readDir(`${s.dir}/blobs/sha256`)) files.push(e.name);
  assertEquals(files, [blob.sha256]);
});

Deno.test("blob store: abandoned temporaries are removed, ones being written are kept", async () => {
  await using s = await tempState();
  const live = await s.blobs.createTemp();
  const abandoned = await s.blobs.createTemp();
  await abandoned.file.write(new TextEncoder().encode("half a blob"));
  abandoned.file.close(); // its lock goes with it, as when a process dies
  // Another process's view: a second store on the same directory.
  const other = new BlobStore(s.dir, s.store);
  assertEquals(await other.removeStaleTemps(), [abandoned.path]);
  assertEquals(await tempFiles(s.dir), [live.path.slice(live.path.lastIndexOf("/") + 1)]);
  live.file.close();
});

Deno.test("blob store: a temporary held by a killed process is abandoned", async () => {
  await using s = await tempState();
  const path = `${s.dir}/blobs/tmp/killed.partial`;
  await Deno.mkdir(`${s.dir}/blobs/tmp`, { recursive: true });
  // A real second process holds the lock, then dies by SIGKILL.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const f = Deno.openSync(${JSON.stringify(path)}, { create: true, write: true });
      f.lockSync(true); console.log("locked"); setTimeout(() => {}, 60000);`,
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "locked"
  assertEquals(await s.blobs.removeStaleTemps(), [], "kept while its owner lives");
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
  assertEquals(await s.blobs.removeStaleTemps(), [path]);
});

Deno.test("blob store: remove forgets the blob, its sources and its file", async () => {
  await using s = await tempState();
  const data = new TextEncoder().encode("collect me");
  const h = sha(data);
  await s.blobs.commit(await stage(s.blobs, data), {
    sha256: h,
    size: data.length,
    format: "tar",
    source: { etag: md5(data), size: data.length, key: "k" },
  });
  await s.blobs.remove(h);
  assertEquals(s.blobs.has(h), false);
  assertEquals(s.blobs.findByEtag(md5(data), data.length), undefined);
  const rows = s.store.db.prepare("SELECT count(*) AS n FROM blob_sources").get() as { n: number };
  assertEquals(rows.n, 0, "its sources go with it");
  assertEquals(await Deno.stat(s.blobs.pathOf(h)).catch(() => "gone"), "gone");
  await s.blobs.remove(h); // absent is success
});
