/**
 * SIGTERM and SIGINT stop the long commands of a real process within 2 s, with exit 75, and
 * leave nothing half-done outside what resumes: `validate` of a large gzip (one entry, so it is
 * stopped between chunks), `apply` of a 120,000-entry layer (between entries, while writing),
 * and `fetch` in a listing that never answers and in a download that stalls mid-body.
 * `pull` and `activate` need devices: tests/vm/e2e/signals_test.ts.
 */
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { hasOpen, interruptWhen, type Stopped } from "../helpers/signal.ts";
import { s3Env, tempFiles } from "../helpers/s3.ts";
import { Tar } from "../tar/tar_builder.ts";
import { startFaultProxy } from "../../scripts/fault-proxy.ts";
import { createGzip } from "node:zlib";
import { LIBC_PATH } from "../../src/host/libc.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
/** What README promises: stopped within a second or two. */
const STOP_MS = 2000;

function spawn(flags: string[], args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", ...flags, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

function assertInterrupted(r: Stopped, what: string) {
  console.log(`${what}: stopped ${Math.round(r.stopMs)} ms after the signal, exit ${r.code}`);
  assertEquals([r.code, r.signal], [75, null], `${what}: ${r.stderr}`);
  assertStringIncludes(r.stderr, "interrupted");
  assert(r.stopMs < STOP_MS, `${what}: took ${Math.round(r.stopMs)} ms to stop`);
}

/** A gzip tar holding one file of `bytes` zeros (a few MB on disk; seconds to decompress). */
async function zeroGzipLayer(path: string, bytes: number): Promise<void> {
  const gz = createGzip({ level: 1, chunkSize: 1 << 20 });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const written: Promise<unknown>[] = [];
  gz.on("data", (d: Uint8Array) => {
    let off = 0;
    while (off < d.length) off += file.writeSync(d.subarray(off));
  });
  const ended = new Promise((r) => gz.on("end", r));
  const write = (b: Uint8Array) =>
    new Promise<void>((r) => gz.write(b) ? r() : gz.once("drain", () => r()));
  await write(new Tar().header({ name: "zeros", size: bytes }).bytes());
  const zeros = new Uint8Array(1 << 20);
  for (let n = 0; n < bytes; n += zeros.length) await write(zeros);
  await write(new Uint8Array(1024));
  gz.end();
  await ended;
  await Promise.all(written);
  file.close();
}

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${sig} stops validate of a 4 GiB gzip between chunks: exit 75 within 2 s`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "thinimage-sig-" });
    try {
      const layer = `${dir}/zeros.tar.gz`;
      await zeroGzipLayer(layer, 4 * 2 ** 30);
      const child = spawn(["--allow-read", "--allow-env"], ["validate", layer]);
      // Once the file is open the command is reading it (signal listeners come first).
      const r = await interruptWhen(child, () => hasOpen(child.pid, layer), { sig });
      assertInterrupted(r, `validate, ${sig}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("SIGTERM stops apply of a 120,000-entry layer between entries: exit 75 within 2 s", async () => {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-sig-" });
  try {
    const tar = new Tar();
    for (let d = 0; d < 120; d++) {
      tar.dir(`d${d}`);
      for (let f = 0; f < 1000; f++) tar.file(`d${d}/f${f}`, "x");
    }
    const layer = tar.end().write(dir);
    const target = `${dir}/root`;
    await Deno.mkdir(target);
    // As docs/permissions.md says apply runs: read, env, and libc through FFI (its writes).
    const child = spawn(["--allow-read", "--allow-env", `--allow-ffi=${LIBC_PATH}`], [
      "apply",
      layer,
      target,
    ]);
    // Interrupt the extraction pass, once it has written a few directories.
    const r = await interruptWhen(child, () => [...Deno.readDirSync(target)].length >= 3);
    assertInterrupted(r, "apply");
    const written = [...Deno.readDirSync(target)].length;
    assert(written < 120, `apply ran to the end (${written} directories)`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `fetch golang` through a fault proxy; flags as a user would grant them. */
function fetchThrough(proxyUrl: string, state: string) {
  const env = s3Env();
  return spawn(
    [
      `--allow-read=${state}`,
      `--allow-write=${state}`,
      "--allow-env",
      "--allow-sys=osRelease",
      `--allow-net=${new URL(proxyUrl).host}`,
    ],
    ["--state-dir", state, "fetch", "golang"],
    {
      THINIMAGE_S3_ENDPOINT: proxyUrl,
      THINIMAGE_BUCKET: env.bucket,
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
    },
  );
}

Deno.test("SIGTERM stops fetch waiting on a listing page: exit 75 within 2 s", async () => {
  const state = await Deno.makeTempDir({ prefix: "thinimage-sig-" });
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (req) => req.path.includes("list-type") ? { kind: "hang" } : undefined,
  });
  try {
    const child = fetchThrough(proxy.url, state);
    const r = await interruptWhen(child, () => proxy.requests.some((q) => q.fault === "hang"));
    assertInterrupted(r, "fetch (listing)");
  } finally {
    await proxy.close();
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("SIGTERM stops fetch in a stalled download: exit 75 within 2 s, no temporary file left, the next fetch completes", async () => {
  const state = await Deno.makeTempDir({ prefix: "thinimage-sig-" });
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (req) =>
      req.method === "GET" && /\/golang\/1\.tar(\?|$)/.test(req.path)
        ? { kind: "stall", afterBytes: 64 << 10 }
        : undefined,
  });
  try {
    const child = fetchThrough(proxy.url, state);
    const r = await interruptWhen(
      child,
      async () =>
        proxy.requests.some((q) => q.fault === "stall") && (await tempFiles(state)).length > 0,
    );
    assertInterrupted(r, "fetch (download)");
    assertEquals(await tempFiles(state), [], "a temporary file was left in the blob store");
  } finally {
    await proxy.close();
  }
  try {
    const again = spawn(
      [
        `--allow-read=${state}`,
        `--allow-write=${state}`,
        "--allow-env",
        "--allow-sys=osRelease",
        `--allow-net=${new URL(s3Env().endpoint).host}`,
      ],
      ["--state-dir", state, "fetch", "golang"],
      {
        THINIMAGE_S3_ENDPOINT: s3Env().endpoint,
        THINIMAGE_BUCKET: s3Env().bucket,
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
      },
    );
    const out = await again.output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(await tempFiles(state), []);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("SIGTERM: a command that then fails with an error of its own still exits 75 (interrupted)", async () => {
  const state = await Deno.makeTempDir({ prefix: "thinimage-sig-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        "--allow-read",
        "--allow-write",
        new URL("./fixtures/abort_error.ts", import.meta.url).pathname,
        "--state-dir",
        state,
        "abort-error",
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
    const r = await interruptWhen(child, () => exists(`${state}/waiting`));
    assertInterrupted(r, "a command failing after the signal");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
