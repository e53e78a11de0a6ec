/**
 * What the retrieval tests share: the loopback S3 server's coordinates (from
 * `scripts/s3-server.sh env`), an admin client to upload test objects under a fresh prefix,
 * small valid tars, and a throwaway state directory with its blob store.
 *
 * Tests that need the server FAIL, with the command to run, when its variables are missing:
 * a retrieval suite that silently passes without S3 would prove nothing.
 * @module
 */
import {
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { openStore, type Store } from "../../src/store/db.ts";
import { BlobStore } from "../../src/blobs/store.ts";
import { createSource, type ObjectSource } from "../../src/retrieve/source.ts";

/** The test server's coordinates. */
export interface S3TestEnv {
  endpoint: string;
  bucket: string;
  privateBucket: string;
  accessKey: string;
  secretKey: string;
}

/** The THINIMAGE_TEST_* variables, or a thrown error saying how to get them. */
export function s3Env(): S3TestEnv {
  const get = (n: string) => Deno.env.get(n);
  const env = {
    endpoint: get("THINIMAGE_TEST_S3_ENDPOINT"),
    bucket: get("THINIMAGE_TEST_BUCKET"),
    privateBucket: get("THINIMAGE_TEST_PRIVATE_BUCKET"),
    accessKey: get("THINIMAGE_TEST_ACCESS_KEY"),
    secretKey: get("THINIMAGE_TEST_SECRET_KEY"),
  };
  const missing = Object.entries(env).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) {
    throw new Error(
      `the S3 tests need the loopback S3 server (missing ${missing.join(", ")}): run them with ` +
        `scripts/test.sh, or first: eval "$(bash scripts/s3-server.sh env)"`,
    );
  }
  return env as S3TestEnv;
}

/** An anonymous source on the public fixture bucket (or `endpoint`, e.g. a fault proxy). */
export function publicSource(
  opts: { endpoint?: string; prefix?: string; headersTimeoutMs?: number } = {},
): ObjectSource {
  const env = s3Env();
  return createSource({
    bucket: env.bucket,
    endpoint: opts.endpoint ?? env.endpoint,
    prefix: opts.prefix,
    credentials: "anonymous",
    headersTimeoutMs: opts.headersTimeoutMs,
    retryBaseDelayMs: 10,
  });
}

/** A signed client for setting up test objects. */
export function adminClient(): S3Client {
  const env = s3Env();
  return new S3Client({
    region: "us-east-1",
    endpoint: env.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKey, secretAccessKey: env.secretKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: new FetchHttpHandler(),
  });
}

/**
 * A fresh prefix in the public bucket (`t/<uuid>/`) holding `objects` (key relative to the
 * prefix -> bytes). Returns the prefix and a cleanup that deletes everything under it.
 */
export async function uploadScratch(
  objects: Record<string, Uint8Array>,
): Promise<
  {
    prefix: string;
    put: (key: string, body: Uint8Array) => Promise<void>;
    cleanup: () => Promise<void>;
  }
> {
  const env = s3Env();
  const s3 = adminClient();
  const prefix = `t/${crypto.randomUUID()}/`;
  const put = async (key: string, body: Uint8Array) => {
    await s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: prefix + key, Body: body }));
  };
  for (const [key, body] of Object.entries(objects)) await put(key, body);
  return {
    prefix,
    put,
    async cleanup() {
      const listed = await s3.send(
        new ListObjectsV2Command({ Bucket: env.bucket, Prefix: prefix, EncodingType: "url" }),
      );
      const keys = (listed.Contents ?? []).map((o) => ({
        Key: decodeURIComponent(o.Key!.replace(/\+/g, " ")),
      }));
      // One DELETE per key: a multi-delete's XML body cannot carry control characters.
      for (const k of keys) {
        await s3.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: k.Key }));
      }
      s3.destroy();
    },
  };
}

/** A valid tar of the given files (ustar headers, then two zero blocks). */
export function makeTar(files: Record<string, Uint8Array | string>): Uint8Array {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === "string" ? enc.encode(content) : content;
    const h = new Uint8Array(512);
    const field = (off: number, len: number, value: string) =>
      h.set(enc.encode(value).subarray(0, len), off);
    field(0, 100, name);
    field(100, 8, "0000644\0");
    field(108, 8, "0000000\0");
    field(116, 8, "0000000\0");
    field(124, 12, data.length.toString(8).padStart(11, "0") + "\0");
    field(136, 12, "14524522500\0");
    field(148, 8, "        ");
    field(156, 1, "0");
    field(257, 6, "ustar\0");
    field(263, 2, "00");
    const sum = h.reduce((a, b) => a + b, 0);
    field(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of blocks) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/** Deterministic, incompressible bytes. */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A throwaway state directory with an open store and blob store. */
export async function tempState(): Promise<{
  dir: string;
  store: Store;
  blobs: BlobStore;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-test-" });
  const store = openStore(`${dir}/thinimage.db`);
  const blobs = new BlobStore(dir, store);
  return {
    dir,
    store,
    blobs,
    async [Symbol.asyncDispose]() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Names of the files in `<dir>/blobs/tmp` (leftover partial downloads). */
export async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/blobs/tmp`)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}
