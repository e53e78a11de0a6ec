import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { makeTar, s3Env, uploadScratch } from "../helpers/s3.ts";
import { S3ObjectClient } from "../../src/s3/client.ts";
import { ObjectChangedError, S3RequestError } from "../../src/s3/errors.ts";

function client(opts: { bucket?: string; signed?: boolean } = {}): S3ObjectClient {
  const env = s3Env();
  return new S3ObjectClient({
    bucket: opts.bucket ?? env.bucket,
    region: "us-east-1",
    endpoint: env.endpoint,
    credentials: opts.signed
      ? { accessKeyId: env.accessKey, secretAccessKey: env.secretKey }
      : undefined,
    retryBaseDelayMs: 10,
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

Deno.test("s3: listing follows every page", async () => {
  const s3 = client();
  try {
    const one = await collect(s3.list("images/golang/"));
    const paged = await collect(s3.list("images/golang/", { pageSize: 2 }));
    assertEquals(one.length, 5);
    assertEquals(paged, one);
    assert(one.every((o) => /^[0-9a-f]{32}$/.test(o.etag) && o.size > 0 && o.lastModified !== ""));
  } finally {
    s3.destroy();
  }
});

Deno.test("s3: the public bucket reads anonymously, the private one only with credentials", async () => {
  const env = s3Env();
  const anon = client({ bucket: env.privateBucket });
  const signed = client({ bucket: env.privateBucket, signed: true });
  try {
    const err = await assertRejects(
      () => collect(anon.list("images/node/")),
      S3RequestError,
      "access denied",
    );
    assertEquals(err.status, 403);
    assertEquals(err.exitCode, 69);
    assertEquals(err.retryable, false);
    assertEquals((await collect(signed.list("images/node/"))).length, 5);
    const res = await signed.get("images/node/5.tar");
    await res.body.cancel();
    assertEquals(res.status, 200);
  } finally {
    anon.destroy();
    signed.destroy();
  }
});

Deno.test("s3: a missing key is 404, not retryable, exit 69", async () => {
  const s3 = client();
  try {
    const err = await assertRejects(
      () => s3.get("images/golang/99.tar"),
      S3RequestError,
      "no such key",
    );
    assertEquals([err.status, err.retryable, err.exitCode], [404, false, 69]);
  } finally {
    s3.destroy();
  }
});

Deno.test("s3: a ranged GET with If-Match resumes; a stale ETag is ObjectChangedError", async () => {
  const tar = makeTar({ "a.txt": "0123456789".repeat(100) });
  const scratch = await uploadScratch({ "1.tar": tar });
  const s3 = client();
  try {
    const [obj] = await collect(s3.list(scratch.prefix));
    const res = await s3.get(obj.key, { start: 1000, ifMatch: obj.etag });
    const got = new Uint8Array(await new Response(res.body).arrayBuffer());
    assertEquals([res.status, res.objectSize, res.etag], [206, tar.length, obj.etag]);
    assertEquals(got, tar.subarray(1000));
    await assertRejects(
      () => s3.get(obj.key, { ifMatch: "0123456789abcdef0123456789abcdef" }),
      ObjectChangedError,
      "changed since it was listed",
    );
  } finally {
    s3.destroy();
    await scratch.cleanup();
  }
});

Deno.test("s3: a server that is not there is a retryable failure, exit 69", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close(); // nothing listens there now
  const s3 = new S3ObjectClient({
    bucket: "b",
    region: "us-east-1",
    endpoint: `http://127.0.0.1:${port}`,
    listAttempts: 2,
    retryBaseDelayMs: 1,
  });
  try {
    const err = await assertRejects(() => collect(s3.list("x/")), S3RequestError);
    assertEquals([err.retryable, err.exitCode], [true, 69]);
  } finally {
    s3.destroy();
  }
});
