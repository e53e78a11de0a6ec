/**
 * Faults between thinimage and a real S3 server, injected by scripts/fault-proxy.ts: each ends
 * in bounded retries and then success or a clear error, with no partial blob counted and no
 * temporary file left.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../helpers/assert.ts";
import {
  makeTar,
  publicSource,
  randomBytes,
  s3Env,
  tempFiles,
  tempState,
  uploadScratch,
} from "../helpers/s3.ts";
import { type Fault, type ProxyRequest, startFaultProxy } from "../../scripts/fault-proxy.ts";
import { fetchImage } from "../../src/retrieve/fetch_image.ts";
import { fetchLayer } from "../../src/retrieve/fetch_layer.ts";
import { resolveImage } from "../../src/retrieve/resolve.ts";
import { ObjectChangedError, S3RequestError } from "../../src/s3/errors.ts";
import { SourceUnavailableError } from "../../src/errors.ts";

const LAYER = makeTar({ "usr/lib/big.so": randomBytes(600_000, 11) });
const LAYER_SHA = createHash("sha256").update(LAYER).digest("hex");

const isBlobGet = (r: ProxyRequest) => r.method === "GET" && r.path.includes("/f/1.tar");

/** A scratch image `f` with one layer, a proxy with `plan` for the blob's GETs, a state dir. */
async function withFault(
  plan: (get: ProxyRequest, nth: number) => Fault | undefined | Promise<Fault | undefined>,
  body: (ctx: {
    source: ReturnType<typeof publicSource>;
    state: Awaited<ReturnType<typeof tempState>>;
    gets: () => ProxyRequest[];
    scratch: Awaited<ReturnType<typeof uploadScratch>>;
  }) => Promise<void>,
): Promise<void> {
  const scratch = await uploadScratch({ "f/1.tar": LAYER });
  let n = 0;
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (req) => (isBlobGet(req) ? plan(req, ++n) : undefined),
  });
  const source = publicSource({ endpoint: proxy.url, prefix: scratch.prefix });
  await using state = await tempState();
  try {
    await body({ source, state, gets: () => proxy.requests.filter(isBlobGet), scratch });
    assertEquals(await tempFiles(state.dir), [], "no temporary file is left");
  } finally {
    source.close();
    await proxy.close();
    await scratch.cleanup();
  }
}

const opts = { retryBaseDelayMs: 5, idleTimeoutMs: 400 };

Deno.test("faults: a reset mid-body resumes with Range and If-Match", async () => {
  await withFault(
    (_, n) => (n === 1 ? { kind: "reset", afterBytes: 200_000 } : undefined),
    async (t) => {
      const m = await resolveImage(t.source, "f");
      const r = await fetchLayer(t.source, t.state.blobs, m.layers[0], opts);
      assertEquals([r.sha256, r.downloaded], [LAYER_SHA, true]);
      const [first, second] = t.gets();
      assertEquals(first.headers["range"], undefined);
      assertEquals(
        second.headers["range"],
        "bytes=200000-",
        "only the missing bytes are asked for again",
      );
      assertEquals(second.headers["if-match"], `"${m.layers[0].etag}"`);
    },
  );
});

Deno.test("faults: 503 with Retry-After is retried after the wait the server asked for", async () => {
  await withFault(
    (
      _,
      n,
    ) => (n === 1
      ? { kind: "status", status: 503, code: "SlowDown", headers: { "Retry-After": "1" } }
      : undefined),
    async (t) => {
      const waits: number[] = [];
      const r = await fetchImage(t.source, t.state.blobs, "f", {
        ...opts,
        onRetry: (_e, _a, ms) => waits.push(ms),
      });
      assertEquals(r.layers[0].sha256, LAYER_SHA);
      assertEquals(t.gets().length, 2);
      assertEquals(waits, [1000]);
    },
  );
});

Deno.test("faults: a stalled body hits the idle timeout and resumes", async () => {
  await withFault(
    (_, n) => (n === 1 ? { kind: "stall", afterBytes: 100_000 } : undefined),
    async (t) => {
      const retries: string[] = [];
      const r = await fetchImage(t.source, t.state.blobs, "f", {
        ...opts,
        onRetry: (err) => retries.push((err as Error).message),
      });
      assertEquals(r.layers[0].sha256, LAYER_SHA);
      assertStringIncludes(retries[0], "stalled");
      assertEquals(t.gets()[1].headers["range"], "bytes=100000-");
    },
  );
});

Deno.test("faults: a server that never answers hits the headers timeout and is retried", async () => {
  const scratch = await uploadScratch({ "f/1.tar": LAYER });
  let n = 0;
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (req) => (isBlobGet(req) && ++n === 1 ? { kind: "hang" } : undefined),
  });
  const source = publicSource({
    endpoint: proxy.url,
    prefix: scratch.prefix,
    headersTimeoutMs: 300,
  });
  await using state = await tempState();
  try {
    const retries: string[] = [];
    const r = await fetchImage(source, state.blobs, "f", {
      ...opts,
      onRetry: (err) => retries.push((err as Error).message),
    });
    assertEquals(r.layers[0].sha256, LAYER_SHA);
    assertStringIncludes(retries[0], "no response within the timeout");
    assertEquals(n, 2);
    assertEquals(await tempFiles(state.dir), []);
  } finally {
    source.close();
    await proxy.close();
    await scratch.cleanup();
  }
});

Deno.test("faults: a truncated body (short Content-Length) is completed by a ranged GET", async () => {
  await withFault(
    (_, n) => (n === 1 ? { kind: "truncate", bytes: 300_000 } : undefined),
    async (t) => {
      const r = await fetchImage(t.source, t.state.blobs, "f", opts);
      assertEquals(r.layers[0].sha256, LAYER_SHA);
      assertEquals(t.gets()[1].headers["range"], "bytes=300000-");
    },
  );
});

Deno.test("faults: an ETag that changes between attempts is never spliced", async () => {
  await withFault(
    (_, n) =>
      n === 1
        ? { kind: "reset", afterBytes: 100_000 }
        : { kind: "etag", etag: "0123456789abcdef0123456789abcdef" },
    async (t) => {
      const m = await resolveImage(t.source, "f");
      const err = await assertRejects(
        () => fetchLayer(t.source, t.state.blobs, m.layers[0], opts),
        ObjectChangedError,
        "changed since it was listed",
      );
      assertEquals(err.exitCode, 75);
      assertEquals(t.state.blobs.list(), []);
    },
  );
});

Deno.test("faults: an object replaced mid-download makes fetch start over on the new version", async () => {
  const replacement = makeTar({ "usr/lib/big.so": randomBytes(500_000, 12) });
  let scratchPut: ((key: string, body: Uint8Array) => Promise<void>) | undefined;
  await withFault(async (_, n) => {
    if (n !== 2) return n === 1 ? { kind: "reset", afterBytes: 150_000 } : undefined;
    // Before the resume reaches the server, the object is replaced for real: If-Match fails.
    await scratchPut!("f/1.tar", replacement);
    return undefined;
  }, async (t) => {
    scratchPut = t.scratch.put;
    const first = await resolveImage(t.source, "f");
    const r = await fetchImage(t.source, t.state.blobs, "f", opts);
    assert(r.manifest.digest !== first.digest, "the image was resolved again");
    assertEquals(r.layers[0].sha256, createHash("sha256").update(replacement).digest("hex"));
    assertEquals(r.layers[0].size, replacement.length);
    assertEquals(t.state.blobs.list().length, 1, "nothing of the old version was counted");
  });
});

Deno.test("faults: 404 for a listed key is a clear 69 without retries", async () => {
  await withFault(() => ({ kind: "status", status: 404, code: "NoSuchKey" }), async (t) => {
    const err = await assertRejects(
      () => fetchImage(t.source, t.state.blobs, "f", opts),
      S3RequestError,
      "no such key",
    );
    assertEquals(err.exitCode, 69);
    assertStringIncludes(err.message, "/f/1.tar");
    assertEquals(t.gets().length, 1);
    assertEquals(t.state.blobs.list(), []);
  });
});

Deno.test("faults: 403 is a clear 69 without retries", async () => {
  await withFault(() => ({ kind: "status", status: 403 }), async (t) => {
    const err = await assertRejects(
      () => fetchImage(t.source, t.state.blobs, "f", opts),
      SourceUnavailableError,
      "access denied",
    );
    assertEquals(err.exitCode, 69);
    assertEquals(t.gets().length, 1);
  });
});

Deno.test("faults: retries are bounded: a server that keeps failing ends in 69", async () => {
  await withFault(() => ({ kind: "reset", afterBytes: 1000 }), async (t) => {
    const err = await assertRejects(
      () => fetchImage(t.source, t.state.blobs, "f", { ...opts, attempts: 4 }),
      S3RequestError,
    );
    assertEquals(err.exitCode, 69);
    assertEquals(t.gets().length, 4);
    assertEquals(t.state.blobs.list(), []);
  });
});

Deno.test("faults: a listing that fails with 503 is retried", async () => {
  const scratch = await uploadScratch({ "f/1.tar": LAYER });
  let lists = 0;
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (
      req,
    ) => (req.path.includes("list-type") && ++lists === 1
      ? { kind: "status", status: 503 }
      : undefined),
  });
  const source = publicSource({ endpoint: proxy.url, prefix: scratch.prefix });
  try {
    const m = await resolveImage(source, "f");
    assertEquals(m.layers.length, 1);
    assertEquals(lists, 2);
  } finally {
    source.close();
    await proxy.close();
    await scratch.cleanup();
  }
});

Deno.test("faults: cancelling stops the download and leaves no temporary file", async () => {
  await withFault(
    (_, n) => (n === 1 ? { kind: "stall", afterBytes: 50_000 } : undefined),
    async (t) => {
      const m = await resolveImage(t.source, "f");
      const ac = new AbortController();
      const p = fetchLayer(t.source, t.state.blobs, m.layers[0], {
        ...opts,
        idleTimeoutMs: 60_000,
        signal: ac.signal,
        onProgress: (bytes) => {
          if (bytes >= 50_000) ac.abort(new Error("cancelled by the test"));
        },
      });
      await assertRejects(() => p, Error, "cancelled by the test");
      assertEquals(t.state.blobs.list(), []);
    },
  );
});
