/**
 * Benchmark: `thinimage fetch` throughput against `curl` of the same objects from the same
 * loopback radosgw, and peak RSS of fetching a 1 GiB layer (vs a 64 MiB one: memory must not
 * grow with the blob). Prints a Markdown table.
 *
 *   deno run -A bench/fetch.ts [--rounds 3] [--image golang] [--keep] [--json]
 *
 * With --json, one JSON document (every sample, the ceilings, the peak RSS, the CPU seconds)
 * replaces the Markdown on stdout.
 *
 * CPU seconds are counted per contender and round: the client's (user + system, from this
 * process's reaped-children times) and the S3 server's (radosgw and ceph-osd, from /proc).
 * With two cores shared by client and server, they say how far a contender can go.
 *
 * Starts the S3 server if needed (scripts/s3-server.sh) and uploads the full-size fixture image
 * and two big single-layer images into the bucket `thinimage-bench` (about 2 GB, held in the
 * server's memory, so they are deleted at the end unless --keep). Each round runs every contender once,
 * in an order that alternates, into fresh directories; medians are reported.
 * @module
 */
import { parseArgs } from "node:util";
import {
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";

const ROOT = new URL("..", import.meta.url).pathname;
const BUCKET = "thinimage-bench";
const MIB = 1024 * 1024;

interface Env {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

async function serverEnv(): Promise<Env> {
  if (!Deno.env.get("THINIMAGE_TEST_S3_ENDPOINT")) {
    const out = await new Deno.Command("/usr/bin/bash", {
      args: [`${ROOT}scripts/s3-server.sh`, "env"],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("scripts/s3-server.sh env failed");
    for (const m of new TextDecoder().decode(out.stdout).matchAll(/^export (\w+)=(.*)$/gm)) {
      Deno.env.set(m[1], m[2]);
    }
  }
  return {
    endpoint: Deno.env.get("THINIMAGE_TEST_S3_ENDPOINT")!,
    accessKey: Deno.env.get("THINIMAGE_TEST_ACCESS_KEY")!,
    secretKey: Deno.env.get("THINIMAGE_TEST_SECRET_KEY")!,
  };
}

function admin(env: Env): S3Client {
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

async function exists(s3: S3Client, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

/** A single-entry tar of `size` bytes in all: a valid header, incompressible data, end blocks. */
function bigTar(size: number): Uint8Array {
  const out = new Uint8Array(size);
  const dataLen = size - 512 - 1024;
  const enc = new TextEncoder();
  const field = (off: number, v: string) => out.set(enc.encode(v), off);
  field(0, "usr/lib/big.bin");
  field(100, "0000644\0");
  field(108, "0000000\0");
  field(116, "0000000\0");
  field(124, dataLen.toString(8).padStart(11, "0") + "\0");
  field(136, "14524522500\0");
  field(148, "        ");
  field(156, "0");
  field(257, "ustar\0");
  field(263, "00");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i];
  field(148, sum.toString(8).padStart(6, "0") + "\0 ");
  const words = new Uint32Array(out.buffer, 512, Math.floor(dataLen / 4));
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

async function prepare(env: Env, image: string): Promise<void> {
  const s3 = admin(env);
  try {
    if (!(await exists(s3, "fixtures-version"))) {
      console.error("bench: uploading full-size fixtures to", BUCKET);
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}scripts/make-fixtures.ts`,
          "--endpoint",
          env.endpoint,
          "--bucket",
          BUCKET,
          "--version",
          "bench",
          "--full-size",
          "--only",
          image,
        ],
        env: { AWS_ACCESS_KEY_ID: env.accessKey, AWS_SECRET_ACCESS_KEY: env.secretKey },
        stdout: "inherit",
        stderr: "null",
      }).output();
      if (!out.success) throw new Error("make-fixtures --full-size failed");
    }
    for (const [image, size] of [["big", 1024 * MIB], ["medium", 64 * MIB]] as const) {
      if (!(await exists(s3, `images/${image}/1.tar`))) {
        console.error(`bench: uploading images/${image}/1.tar (${size / MIB} MiB)`);
        await s3.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: `images/${image}/1.tar`,
            Body: bigTar(size),
          }),
        );
      }
    }
  } finally {
    s3.destroy();
  }
}

/** Delete everything in the bench bucket: memstore holds it in RAM. */
async function cleanup(env: Env): Promise<void> {
  const s3 = admin(env);
  try {
    for (;;) {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys } }));
    }
  } finally {
    s3.destroy();
  }
}

/** Layer keys and total bytes of an image, via the thinimage CLI's own listing. */
async function layersOf(env: Env, image: string): Promise<{ keys: string[]; bytes: number }> {
  const { createSource } = await import("../src/retrieve/source.ts");
  const { resolveImage } = await import("../src/retrieve/resolve.ts");
  const source = createSource({ bucket: BUCKET, endpoint: env.endpoint, credentials: "anonymous" });
  try {
    const m = await resolveImage(source, image);
    return { keys: m.layers.map((l) => l.key), bytes: m.layers.reduce((n, l) => n + l.size, 0) };
  } finally {
    source.close();
  }
}

/** `thinimage fetch` in a child process with the permissions a user would give it. */
async function thinimageFetch(env: Env, image: string, stateDir: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${stateDir}`,
      `--allow-write=${stateDir}`,
      "--allow-env",
      "--allow-sys=osRelease",
      `--allow-net=${new URL(env.endpoint).host}`,
      `${ROOT}src/main.ts`,
      "--state-dir",
      stateDir,
      "fetch",
      image,
      "--endpoint",
      env.endpoint,
      "--bucket",
      BUCKET,
    ],
    env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`thinimage fetch failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return (performance.now() - t0) / 1000;
}

/** curl of the same objects; `parallel` = how many at once (1: one after the other). */
async function curlFetch(env: Env, keys: string[], dir: string, parallel: number): Promise<number> {
  const args = ["-sS", "--fail"];
  if (parallel > 1) args.push("--parallel", "--parallel-max", String(parallel));
  keys.forEach((k, i) => args.push("-o", `${dir}/${i}`, `${env.endpoint}/${BUCKET}/${k}`));
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/curl", { args, stderr: "piped" }).output();
  if (!out.success) throw new Error(`curl failed: ${new TextDecoder().decode(out.stderr)}`);
  return (performance.now() - t0) / 1000;
}

/**
 * Peak RSS (VmHWM) of a process that runs `thinimage fetch IMAGE` through the CLI frame.
 * Permissions are not revoked here: Deno lets only --allow-all read /proc/self/status.
 */
async function peakRss(env: Env, image: string, stateDir: string): Promise<number> {
  const code = `
    import { runCli } from "${ROOT}src/cli/frame.ts";
    const rc = await runCli(["--state-dir", ${JSON.stringify(stateDir)}, "fetch", ${
    JSON.stringify(image)
  },
      "--endpoint", ${
    JSON.stringify(env.endpoint)
  }, "--bucket", "${BUCKET}"], { noSignals: true, noRevoke: true });
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"))[1];
    console.log(JSON.stringify({ rc, hwmKiB: Number(hwm) }));
  `;
  const script = `${stateDir}.rss.ts`;
  await Deno.writeTextFile(script, code);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--config=${ROOT}deno.json`, script],
      env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    if (r.rc !== 0) {
      throw new Error(`fetch ${image} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return r.hwmKiB / 1024;
  } finally {
    await Deno.remove(script).catch(() => {});
  }
}

/**
 * Where the time goes, in this process: one GET of the 1 GiB layer read and dropped, then with
 * each per-byte cost `thinimage fetch` adds (SHA-256, MD5, the write), and the two hashes over
 * memory. MB/s each.
 */
async function ceilings(env: Env): Promise<[string, number][]> {
  const { createHash } = await import("node:crypto");
  const { S3ObjectClient } = await import("../src/s3/client.ts");
  const s3 = new S3ObjectClient({ bucket: BUCKET, region: "us-east-1", endpoint: env.endpoint });
  const tmp = await Deno.makeTempFile({ prefix: "thinimage-bench-" });
  const file = await Deno.open(tmp, { write: true });
  const rows: [string, number][] = [];
  const get = async (label: string, each: (c: Uint8Array) => void) => {
    const t0 = performance.now();
    const res = await s3.get("images/big/1.tar");
    let n = 0;
    for await (const c of res.body) {
      each(c);
      n += c.length;
    }
    rows.push([label, n / 1e6 / ((performance.now() - t0) / 1000)]);
  };
  try {
    await get("GET, bytes dropped", () => {});
    const sha = createHash("sha256");
    await get("GET + SHA-256", (c) => sha.update(c));
    const md5 = createHash("md5");
    await get("GET + MD5", (c) => md5.update(c));
    const s2 = createHash("sha256"), m2 = createHash("md5");
    await get("GET + SHA-256 + MD5 + write, all on one thread", (c) => {
      s2.update(c);
      m2.update(c);
      file.writeSync(c);
    });
    const mem = new Uint8Array(256 * MIB);
    for (const algo of ["sha256", "md5"]) {
      const t0 = performance.now();
      createHash(algo).update(mem).digest();
      rows.push([
        `${algo.toUpperCase()} over memory`,
        mem.length / 1e6 / ((performance.now() - t0) / 1000),
      ]);
    }
  } finally {
    file.close();
    s3.destroy();
    await Deno.remove(tmp);
  }
  return rows;
}

const TICKS_PER_S = 100;

/** User + system seconds of this process's reaped children so far. */
function childrenCpu(): number {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  // Fields 16 and 17 of stat (cutime, cstime), counted from the state field (3).
  return (Number(f[13]) + Number(f[14])) / TICKS_PER_S;
}

/** User + system seconds of the S3 server's daemons (radosgw, ceph-osd) so far. */
function serverCpu(): number {
  let sum = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const comm = Deno.readTextFileSync(`/proc/${e.name}/comm`).trim();
      if (comm !== "radosgw" && comm !== "ceph-osd") continue;
      const f = Deno.readTextFileSync(`/proc/${e.name}/stat`).split(") ")[1].split(" ");
      sum += (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
    } catch {
      // The process ended meanwhile.
    }
  }
  return sum;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "3" },
      image: { type: "string", default: "golang" },
      keep: { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  const rounds = Number(values.rounds);
  const env = await serverEnv();
  await prepare(env, values.image!);
  const { keys, bytes } = await layersOf(env, values.image!);
  const work = await Deno.makeTempDir({ prefix: "thinimage-bench-" });
  const contenders: Record<string, (dir: string) => Promise<number>> = {
    "thinimage fetch": (dir) => thinimageFetch(env, values.image!, dir),
    "curl, one at a time": (dir) => curlFetch(env, keys, dir, 1),
    "curl --parallel-max 2": (dir) => curlFetch(env, keys, dir, 2),
  };
  const times: Record<string, number[]> = Object.fromEntries(
    Object.keys(contenders).map((k) => [k, []]),
  );
  const clientCpu: Record<string, number[]> = Object.fromEntries(
    Object.keys(contenders).map((k) => [k, []]),
  );
  const serverCpuS: Record<string, number[]> = Object.fromEntries(
    Object.keys(contenders).map((k) => [k, []]),
  );
  try {
    for (let r = 0; r < rounds; r++) {
      const order = Object.keys(contenders);
      if (r % 2) order.reverse();
      for (const name of order) {
        const dir = `${work}/r${r}-${name.replace(/\W+/g, "_")}`;
        await Deno.mkdir(dir);
        const c0 = childrenCpu(), s0 = serverCpu();
        times[name].push(await contenders[name](dir));
        clientCpu[name].push(childrenCpu() - c0);
        serverCpuS[name].push(serverCpu() - s0);
        await Deno.remove(dir, { recursive: true });
      }
    }
    const cost = await ceilings(env);
    const rssBig = await peakRss(env, "big", `${work}/rss-big`);
    const rssMedium = await peakRss(env, "medium", `${work}/rss-medium`);
    const mbps = (name: string) => bytes / 1e6 / median(times[name]);
    const best = Math.max(mbps("curl, one at a time"), mbps("curl --parallel-max 2"));
    if (values.json) {
      console.log(JSON.stringify({
        image: values.image,
        layers: keys.length,
        bytes,
        rounds,
        seconds: times,
        cpuSeconds: { client: clientCpu, server: serverCpuS },
        ceilingsMBps: Object.fromEntries(cost),
        peakRssMiB: { "64MiB": rssMedium, "1GiB": rssBig },
      }));
      return;
    }
    console.log(
      `\n### fetch: ${values.image} (${keys.length} layers, ${(bytes / 1e6).toFixed(0)} MB), ` +
        `${rounds} rounds, medians, loopback radosgw\n`,
    );
    console.log("| contender | median s | MB/s | vs best curl | CPU s, client | CPU s, server |");
    console.log("|---|---:|---:|---:|---:|---:|");
    for (const name of Object.keys(contenders)) {
      console.log(
        `| ${name} | ${median(times[name]).toFixed(2)} | ${mbps(name).toFixed(0)} | ${
          (mbps(name) / best).toFixed(2)
        }x | ${median(clientCpu[name]).toFixed(2)} | ${median(serverCpuS[name]).toFixed(2)} |`,
      );
    }
    console.log("\n| ceiling, in one Deno process, 1 GiB object | MB/s |");
    console.log("|---|---:|");
    for (const [label, v] of cost) console.log(`| ${label} | ${v.toFixed(0)} |`);
    console.log("\n| peak RSS (VmHWM) of `thinimage fetch` | MiB |");
    console.log("|---|---:|");
    console.log(`| one 64 MiB layer | ${rssMedium.toFixed(0)} |`);
    console.log(`| one 1 GiB layer | ${rssBig.toFixed(0)} |`);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    if (!values.keep) await cleanup(env);
  }
}

if (import.meta.main) await main();
