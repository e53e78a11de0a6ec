/**
 * The benchmark rows that need a real kernel (device-mapper, ext4 on thin volumes). Runs as
 * root inside the test VM, where the S3 server runs too (the guest has no network):
 *
 *   bash scripts/vm.sh -- deno run -A bench/vm.ts [--rounds N] [--quick] [--json] [--diagnose]
 *     [--apply-only]
 *
 * (a) apply: `thinimage apply` of one layer onto a fresh, mounted ext4 thin volume vs GNU
 *     `tar -x` of the same layer onto the same kind of volume; each timed up to `sync -f`.
 * (b) cold activate of golang, node and python (the scaled fixtures) through the CLI, one after
 *     the other in a fresh state directory and pool, vs the naive pipeline: per image, curl of
 *     its keys, a fresh thin volume, mkfs, GNU tar -x of each layer, sync. Seconds, bytes
 *     downloaded, pool data used.
 * (c) warm activate of a ready image (a new activation name, and the same one again) vs
 *     `deno run` of an empty script; S3 requests counted by a loopback proxy in front of the
 *     server.
 * (d) pool metadata used after the three images, both ways.
 *
 * --apply-only: row (a) alone, without the S3 server (a few minutes).
 * --diagnose adds where the time goes: readlink(2) cost per file system, the syscall counts of
 * one apply, the programs one warm activate starts.
 *
 * Rounds alternate which contender goes first; medians and min-max are reported. Everything
 * here is emulated (qemu TCG): only ratios between rows measured in this same VM mean anything.
 * Prints Markdown, or with --json one JSON document of {@linkcode VmResults}.
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { openStore, type Store } from "../src/store/db.ts";
import { initPool, poolStatus, removePool } from "../src/devmapper/pool.ts";
import { ThinPool } from "../src/devmapper/thin.ts";
import { StateDir } from "../src/state_dir.ts";
import { mkfsExt4, mountPrivate, unmount } from "../src/devmapper/fs.ts";
import { permissionFlags } from "../src/cli/permissions.ts";
import { DEFAULT_DEVICE_SIZE } from "../src/agent/defaults.ts";
import { startFaultProxy } from "../scripts/fault-proxy.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The CLI, from a copy on the guest's disk (see {@linkcode installLocally}). */
let MAIN = `${ROOT}/src/main.ts`;
let ONE_PASS = `${ROOT}/bench/apply_one_pass.ts`;
const TAR = "/usr/bin/tar";
const CURL = "/usr/bin/curl";
const SYNC = "/usr/bin/sync";
const IMAGES = ["golang", "node", "python"] as const;
const dec = new TextDecoder();

/** Samples of one measured quantity, summarised by {@linkcode summary}. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** What `bench/vm.ts --json` prints. */
export interface VmResults {
  kernel: string;
  cpus: number;
  memMiB: number;
  apply: {
    layerBytes: number;
    entries: number;
    trees: string[];
    /** `thinimage apply` (validate, then apply): the debugging command. */
    thinimageS: Stat;
    /** Pull's unpack: the blob was validated at fetch, so one pass (bench/apply_one_pass.ts). */
    onePassS: Stat;
    tarS: Stat;
  };
  cold: {
    fixture: string;
    thinimageS: Stat;
    naiveS: Stat;
    thinimageBytes: number;
    naiveBytes: number;
    thinimageDataBytes: number;
    naiveDataBytes: number;
    thinimageMetaBlocks: number;
    naiveMetaBlocks: number;
    /** Regular-file bytes of the distinct layers (chains) unpacked: the floor for pool data. */
    uniqueUnpackedBytes: number;
    /** The same summed per image: what unpacking every image on its own writes. */
    naiveUnpackedBytes: number;
    /** Bytes of the distinct layer blobs: the floor for bytes downloaded. */
    uniqueBlobBytes: number;
    blockBytes: number;
    deviceBytes: number;
  };
  warm: {
    newNameMs: Stat;
    sameNameMs: Stat;
    /** The same, handed to `thinimage daemon` serving the state directory. */
    daemonNewNameMs?: Stat;
    daemonSameNameMs?: Stat;
    floorMs: Stat;
    requests: number;
    /** Object GETs (a blob download); a listing is an HTTP GET too, but not one of these. */
    gets: number;
    /** Method and path of each S3 request made during the warm runs. */
    paths: string[];
  };
  /** With --diagnose: where the time of apply and of a warm activate goes. */
  diagnose?: Diagnosis;
  /** How long the whole VM bench took. */
  seconds?: number;
}

/** Evidence for the rows that miss their targets. */
export interface Diagnosis {
  /** Microseconds per readlink(2) of a directory on each file system (Deno resolves every
   * prefix of a path it opens for writing, one readlink per component). */
  readlinkUs: Record<string, number>;
  /** Syscall counts of one `thinimage apply` (strace -c -f), the top ones. */
  applySyscalls: [string, number][];
  /** Programs one warm `activate` (new name) ran, with counts (strace -e execve). */
  warmExecs: [string, number][];
}

/** Median, min and max of `xs`. */
export function summary(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

async function must(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Start the S3 server inside this VM (with the scaled fixtures) and return its coordinates. */
async function startS3(): Promise<{ endpoint: string; bucket: string }> {
  const out = await must("/usr/bin/bash", [`${ROOT}/scripts/s3-server.sh`, "env"]);
  const vars = Object.fromEntries(
    [...out.matchAll(/^export (\w+)=['"]?([^'"\n]*)/gm)].map((m) => [m[1], m[2]]),
  );
  return { endpoint: vars.THINIMAGE_TEST_S3_ENDPOINT, bucket: vars.THINIMAGE_TEST_BUCKET };
}

const STRACE = "/usr/bin/strace";
/** The fixtures' scale (scripts/s3-server.sh reads the same variable). */
const FIXTURE_SCALE = Number(Deno.env.get("THINIMAGE_FIXTURES_SCALE") ?? 500);

/** Microseconds per readlink(2) of `dir` (EINVAL: a directory is not a link). */
function readlinkUs(dir: string): number {
  const n = 2000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    try {
      Deno.readLinkSync(dir);
    } catch { /* EINVAL, as for every prefix Deno checks */ }
  }
  return (performance.now() - t0) / n * 1000;
}

/** Run `cmd args` under `strace -c -f`; the most frequent syscalls with their counts. */
async function syscallCounts(cmd: string, args: string[], top = 10): Promise<[string, number][]> {
  const out = join(await Deno.makeTempDir({ prefix: "thinimage-bench-" }), "strace.txt");
  await must(STRACE, ["-c", "-f", "-o", out, cmd, ...args]);
  const rows: [string, number][] = [];
  for (const line of (await Deno.readTextFile(out)).split("\n")) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line);
    if (m && m[2] !== "total") rows.push([m[2], Number(m[1])]);
  }
  await Deno.remove(join(out, ".."), { recursive: true });
  return rows.sort((a, b) => b[1] - a[1]).slice(0, top);
}

/** Run `cmd args` under `strace -f -e execve`; each program started, with counts. */
async function execCounts(cmd: string, args: string[], env: Record<string, string>) {
  const out = join(await Deno.makeTempDir({ prefix: "thinimage-bench-" }), "strace.txt");
  await must(STRACE, ["-f", "-qq", "-e", "trace=execve", "-o", out, cmd, ...args], env);
  const counts = new Map<string, number>();
  for (const m of (await Deno.readTextFile(out)).matchAll(/execve\("([^"]+)".*= 0$/gm)) {
    counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  await Deno.remove(join(out, ".."), { recursive: true });
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** A loop-backed pool of our own in `dir`, with the device API the product uses. */
async function ownPool(dir: string, name: string): Promise<{ store: Store; thin: ThinPool }> {
  const store = openStore(join(dir, "thinimage.db"));
  const state = new StateDir(dir);
  const info = await initPool(state.pool, store, { name, dataSize: 2 * 1024 ** 3 });
  return { store, thin: new ThinPool(store, info, state.deviceHost()) };
}

/** Remove every device of the pool, the pool, its files and `dir`. */
async function dropPool(dir: string, store: Store, thin: ThinPool): Promise<void> {
  for (const d of thin.list()) await thin.remove(d.name);
  await removePool(store, thin.pool.name, { deleteFiles: true });
  store.close();
  await Deno.remove(dir, { recursive: true });
}

/** A fresh ext4 thin volume mounted on `mnt` (mkfs as the product does it). */
async function freshVolume(thin: ThinPool, name: string, size: number, mnt: string) {
  await thin.createThin(name, size);
  const dev = await thin.activate(name);
  // The product's mkfs (the pool zeroes new blocks, so the tables need not be written).
  await mkfsExt4(dev, { prezeroed: true });
  await mountPrivate(dev, mnt);
}

async function releaseVolume(thin: ThinPool, name: string, mnt: string): Promise<void> {
  await unmount(mnt);
  await thin.remove(name);
}

/** (a) apply vs GNU tar -x onto fresh volumes. */
async function benchApply(
  rounds: number,
  trees: string[],
  diag?: Partial<Diagnosis>,
): Promise<VmResults["apply"]> {
  const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "thinimage-bench-apply-" });
  const { store, thin } = await ownPool(dir, `thinimage-bench-apply${Deno.pid}`);
  try {
    const layer = join(dir, "layer.tar");
    await must(TAR, ["-cf", layer, "--numeric-owner", "-C", "/", ...trees]);
    const layerBytes = (await Deno.stat(layer)).size;
    const sha = (await must("/usr/bin/sha256sum", [layer])).split(" ")[0];
    const entries = (await must(TAR, ["-tf", layer])).trim().split("\n").length;
    const flags = permissionFlags({ netHosts: ["127.0.0.1:7480"] });
    const applyArgv = (mnt: string) => [
      "run",
      "--no-check",
      ...flags,
      MAIN,
      "apply",
      layer,
      mnt,
      "--sha256",
      sha,
    ];
    const contenders: Record<string, (mnt: string) => Promise<unknown>> = {
      thinimage: (mnt) => must(Deno.execPath(), applyArgv(mnt)),
      onePass: (mnt) =>
        must(Deno.execPath(), ["run", "--no-check", ...flags, ONE_PASS, layer, mnt, sha, "0"]),
      tar: (mnt) =>
        must(TAR, [
          "-x",
          "--numeric-owner",
          "--same-permissions",
          "--same-owner",
          "-f",
          layer,
          "-C",
          mnt,
        ]),
    };
    const t: Record<string, number[]> = { thinimage: [], tar: [], onePass: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? ["tar", "onePass", "thinimage"] : ["thinimage", "onePass", "tar"];
      for (const who of order) {
        const name = `thinimage-bench-${who}-${r}`;
        const mnt = join(dir, "mnt", name);
        await freshVolume(thin, name, 1024 ** 3, mnt);
        t[who].push(
          await timed(async () => {
            await contenders[who](mnt);
            await must(SYNC, ["-f", mnt]);
          }),
        );
        console.error(`apply round ${r + 1}/${rounds}: ${who} ${t[who].at(-1)!.toFixed(1)} s`);
        await releaseVolume(thin, name, mnt);
      }
    }
    if (diag) {
      const name = "thinimage-bench-diag";
      const mnt = join(dir, "mnt", name);
      await freshVolume(thin, name, 1024 ** 3, mnt);
      diag.readlinkUs = {
        "/var/tmp (overlay on 9p)": readlinkUs("/var/tmp"),
        "/run (tmpfs)": readlinkUs("/run"),
        "the mounted volume (ext4 on thin)": readlinkUs(mnt),
      };
      diag.applySyscalls = await syscallCounts(Deno.execPath(), applyArgv(mnt));
      await releaseVolume(thin, name, mnt);
    }
    return {
      layerBytes,
      entries,
      trees: trees.map((t) => "/" + t),
      thinimageS: summary(t.thinimage),
      onePassS: summary(t.onePass),
      tarS: summary(t.tar),
    };
  } finally {
    await dropPool(dir, store, thin);
  }
}

/** One state directory with a pool, driven through the CLI as the e2e tests do. */
class Cli {
  constructor(readonly dir: string, readonly endpoint: string, readonly bucket: string) {}
  argv(args: string[]): string[] {
    return [
      "run",
      "--no-check",
      ...permissionFlags({ netHosts: [new URL(this.endpoint).host], stateDir: this.dir }),
      MAIN,
      "--state-dir",
      this.dir,
      ...args,
    ];
  }
  get env(): Record<string, string> {
    return { THINIMAGE_S3_ENDPOINT: this.endpoint, THINIMAGE_BUCKET: this.bucket };
  }
  async run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: this.argv(args),
      env: this.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }
  async ok(args: string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code !== 0) throw new Error(`thinimage ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }
}

/** Wait (up to a minute: a start under emulation) until a daemon listens at `path`. */
async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await Deno.stat(path)).isSocket) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no daemon listening at ${path} after 60 s`);
}

/** Bytes the `blob` runs of a state directory downloaded. */
function downloadedBytes(dir: string): number {
  const store = openStore(join(dir, "thinimage.db"));
  try {
    let n = 0;
    const rows = store.db.prepare(
      "SELECT response FROM runs WHERE machine = 'blob' AND status = 'done'",
    ).all() as { response: string }[];
    for (const r of rows) {
      const res = JSON.parse(String(r.response));
      if (res.downloaded) n += res.size;
    }
    return n;
  } finally {
    store.close();
  }
}

/** What the distinct layers of a CLI state directory hold, and the same summed per image. */
function unpackedBytes(dir: string): {
  uniqueUnpackedBytes: number;
  naiveUnpackedBytes: number;
  uniqueBlobBytes: number;
} {
  const store = openStore(join(dir, "thinimage.db"));
  try {
    const one = (sql: string) => Number((store.db.prepare(sql).get() as { n: number }).n ?? 0);
    return {
      uniqueUnpackedBytes: one("SELECT SUM(unpacked_bytes) AS n FROM chains"),
      naiveUnpackedBytes: one(
        "SELECT SUM(c.unpacked_bytes) AS n FROM image_layers l JOIN chains c ON c.chain_id = l.chain_id",
      ),
      uniqueBlobBytes: one(
        "SELECT SUM(size) AS n FROM (SELECT DISTINCT sha256, size FROM image_layers)",
      ),
    };
  } finally {
    store.close();
  }
}

/** Remove what a CLI state directory made: every device, its pool, the directory. */
async function dropCliState(dir: string, pool: string): Promise<void> {
  const store = openStore(join(dir, "thinimage.db"));
  const { ensurePool } = await import("../src/devmapper/pool.ts");
  const state = new StateDir(dir);
  const thin = new ThinPool(store, await ensurePool(state.pool, store, pool), state.deviceHost());
  await dropPool(dir, store, thin);
}

/** (b), (c), (d): cold and warm activation through the CLI vs the naive pipeline. */
async function benchActivate(
  rounds: number,
  warmRounds: number,
  s3: { endpoint: string; bucket: string },
  diag?: Partial<Diagnosis>,
): Promise<{ cold: VmResults["cold"]; warm: VmResults["warm"] }> {
  // Every request of the CLI goes through the proxy, so that warm runs can be counted.
  const proxy = startFaultProxy({ upstream: s3.endpoint });
  const keys: Record<string, string[]> = {};
  for (const image of IMAGES) {
    const list = await must(CURL, [
      "-sS",
      "--fail",
      `${s3.endpoint}/${s3.bucket}?list-type=2&prefix=images/${image}/`,
    ]);
    keys[image] = [...list.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1])
      .filter((k) => /\/\d+\.tar$/.test(k))
      .sort((a, b) => Number(/(\d+)\.tar$/.exec(a)![1]) - Number(/(\d+)\.tar$/.exec(b)![1]));
  }
  const t: Record<string, number[]> = { thinimage: [], naive: [] };
  const warmNew: number[] = [], warmSame: number[] = [], floor: number[] = [];
  const daemonNew: number[] = [], daemonSame: number[] = [];
  let cold = {} as VmResults["cold"];
  let warmReq = 0, warmGets = 0;
  const warmPaths: string[] = [];
  const empty = join(await Deno.makeTempDir({ prefix: "thinimage-bench-" }), "empty.ts");
  await Deno.writeTextFile(empty, "");
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? ["naive", "thinimage"] : ["thinimage", "naive"];
      for (const who of order) {
        const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: `thinimage-bench-${who}-` });
        const pool = `thinimage-bench-${who}${Deno.pid}-${r}`;
        if (who === "thinimage") {
          const cli = new Cli(dir, proxy.url, s3.bucket);
          await cli.ok(["pool", "init", "--name", pool, "--data-size", "2G"]);
          t.thinimage.push(
            await timed(async () => {
              for (const image of IMAGES) await cli.ok(["activate", image, "--json"]);
            }),
          );
          const st = JSON.parse(await cli.ok(["pool", "status", "--json"]));
          const s = st.status ?? st;
          Object.assign(cold, {
            thinimageBytes: downloadedBytes(dir),
            thinimageDataBytes: s.dataUsedBytes,
            thinimageMetaBlocks: s.usedMetaBlocks,
            blockBytes: s.blockSectors * 512,
            ...unpackedBytes(dir),
          });
          // Warm, under the default pull policy: the image is ready; a new activation name makes
          // a snapshot (no listing), the same name finds the activation. The floor runs right
          // beside each.
          if (r === 0) {
            /**
             * Rounds of a new activation name, an existing one and the floor, alternated; every
             * S3 request counted. The existing name may be the one the round made: it runs after.
             */
            const rounds = async (
              label: string,
              names: (w: number) => { fresh: string; again: string },
              fresh: number[],
              again: number[],
            ) => {
              for (let w = 0; w < warmRounds; w++) {
                const before = proxy.requests.length;
                const n = names(w);
                const activate = (name: string) =>
                  timed(() => cli.ok(["activate", "golang", "--name", name, "--json"]));
                const a = async () => fresh.push(await activate(n.fresh) * 1000);
                const b = async () => again.push(await activate(n.again) * 1000);
                const c = async () =>
                  floor.push(await timed(() => must(Deno.execPath(), ["run", empty])) * 1000);
                for (const f of w % 2 ? [c, a, b] : [a, b, c]) await f();
                warmReq += proxy.requests.length - before;
                // Under the default pull policy (missing) a ready image needs no request at all;
                // object downloads (not ListObjectsV2, a GET with list-type=2) are counted apart.
                warmGets += proxy.requests.slice(before).filter((q) =>
                  q.method === "GET" && !/[?&]list-type=2(&|$)/.test(q.path)
                ).length;
                warmPaths.push(
                  ...proxy.requests.slice(before).map((q) =>
                    `${q.method} ${q.path}`
                  ),
                );
                console.error(
                  `${label} ${w + 1}/${warmRounds}: new ${fresh.at(-1)!.toFixed(0)} ms, same ${
                    again.at(-1)!.toFixed(0)
                  } ms, floor ${floor.at(-1)!.toFixed(0)} ms`,
                );
              }
            };
            await rounds("warm", (w) => ({ fresh: `w${w}`, again: "golang" }), warmNew, warmSame);
            // Again with a daemon serving the state directory: the client hands it the work.
            const daemon = new Deno.Command(Deno.execPath(), {
              args: cli.argv(["daemon"]),
              env: cli.env,
              stdin: "null",
              stdout: "null",
              stderr: "null",
            }).spawn();
            try {
              await waitForSocket(join(dir, "daemon.sock"));
              await rounds(
                "warm with the daemon",
                (w) => ({ fresh: `d${w}`, again: `d${w}` }),
                daemonNew,
                daemonSame,
              );
            } finally {
              daemon.kill("SIGTERM");
              await daemon.status;
            }
            if (diag) {
              diag.warmExecs = await execCounts(
                Deno.execPath(),
                cli.argv(["activate", "golang", "--name", "diag", "--json"]),
                cli.env,
              );
            }
          }
          await dropCliState(dir, pool);
        } else {
          const { store, thin } = await ownPool(dir, pool);
          let bytes = 0;
          t.naive.push(
            await timed(async () => {
              for (const image of IMAGES) {
                const dl = join(dir, "dl", image);
                await Deno.mkdir(dl, { recursive: true });
                const args = ["-sS", "--fail"];
                keys[image].forEach((k, i) =>
                  args.push("-o", join(dl, `${i}.tar`), `${s3.endpoint}/${s3.bucket}/${k}`)
                );
                await must(CURL, args);
                const name = `thinimage-bench-naive-${image}`;
                const mnt = join(dir, "mnt", image);
                await freshVolume(thin, name, DEFAULT_DEVICE_SIZE, mnt);
                for (let i = 0; i < keys[image].length; i++) {
                  const f = join(dl, `${i}.tar`);
                  bytes += (await Deno.stat(f)).size;
                  await must(TAR, [
                    "-x",
                    "--numeric-owner",
                    "--same-permissions",
                    "--same-owner",
                    "-f",
                    f,
                    "-C",
                    mnt,
                  ]);
                }
                await must(SYNC, ["-f", mnt]);
                await unmount(mnt);
              }
            }),
          );
          const s = await poolStatus(thin.pool.name);
          Object.assign(cold, {
            naiveBytes: bytes,
            naiveDataBytes: s.dataUsedBytes,
            naiveMetaBlocks: s.usedMetaBlocks,
          });
          await dropPool(dir, store, thin);
        }
        console.error(`cold round ${r + 1}/${rounds}: ${who} ${t[who].at(-1)!.toFixed(1)} s`);
      }
    }
  } finally {
    await proxy.close();
    await Deno.remove(join(empty, ".."), { recursive: true });
  }
  cold = {
    ...cold,
    fixture: `scaled 1/${FIXTURE_SCALE}`,
    thinimageS: summary(t.thinimage),
    naiveS: summary(t.naive),
    deviceBytes: DEFAULT_DEVICE_SIZE,
  };
  return {
    cold,
    warm: {
      newNameMs: summary(warmNew),
      sameNameMs: summary(warmSame),
      daemonNewNameMs: daemonNew.length ? summary(daemonNew) : undefined,
      daemonSameNameMs: daemonSame.length ? summary(daemonSame) : undefined,
      floorMs: summary(floor),
      requests: warmReq,
      gets: warmGets,
      paths: warmPaths,
    },
  };
}

function fmtStat(s: Stat, digits = 1): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
}

/** --diagnose's findings as Markdown lines. */
export function diagnosis(d: Diagnosis): string {
  const list = (xs: [string, number][]) => xs.map(([k, v]) => `${k} ${v}`).join(", ");
  return [
    `- readlink(2) of a directory, µs: ${
      Object.entries(d.readlinkUs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join("; ")
    }`,
    `- syscalls of one apply (strace -c -f): ${list(d.applySyscalls)}`,
    `- programs one warm activate starts: ${list(d.warmExecs)}`,
  ].join("\n");
}

/** The results as Markdown, for a run of this file alone. */
export function markdown(r: VmResults): string {
  const mb = r.apply.layerBytes / 1e6;
  const c = r.cold;
  return [
    `VM: ${r.kernel}, ${r.cpus} vCPUs (qemu TCG), ${r.memMiB} MiB`,
    "",
    "| what | thinimage | against | ratio |",
    "|---|---|---|---|",
    `| apply ${mb.toFixed(0)} MB, ${r.apply.entries} entries (pull's one pass), s | ${
      fmtStat(r.apply.onePassS)
    } | GNU tar -x ${fmtStat(r.apply.tarS)} | ${
      (r.apply.tarS.median / r.apply.onePassS.median).toFixed(2)
    }x |`,
    `| the same by \`thinimage apply\` (validate, then apply), s | ${
      fmtStat(r.apply.thinimageS)
    } | GNU tar -x ${fmtStat(r.apply.tarS)} | ${
      (r.apply.tarS.median / r.apply.thinimageS.median).toFixed(2)
    }x |`,
    `| cold activate x3, s | ${fmtStat(c.thinimageS)} | naive ${fmtStat(c.naiveS)} | ${
      (c.naiveS.median / c.thinimageS.median).toFixed(2)
    }x |`,
    `| bytes downloaded | ${c.thinimageBytes} | ${c.naiveBytes} | ${
      (c.thinimageBytes / c.naiveBytes).toFixed(2)
    } |`,
    `| pool data used, bytes | ${c.thinimageDataBytes} | ${c.naiveDataBytes} | ${
      (c.thinimageDataBytes / c.naiveDataBytes).toFixed(2)
    } |`,
    `| pool metadata used, 4 KiB blocks | ${c.thinimageMetaBlocks} | ${c.naiveMetaBlocks} | |`,
    `| warm activate (new name), ms | ${fmtStat(r.warm.newNameMs, 0)} | empty deno run ${
      fmtStat(r.warm.floorMs, 0)
    } | ${(r.warm.newNameMs.median / r.warm.floorMs.median).toFixed(2)}x |`,
    `| warm activate (same name), ms | ${fmtStat(r.warm.sameNameMs, 0)} | | ${
      (r.warm.sameNameMs.median / r.warm.floorMs.median).toFixed(2)
    }x |`,
    ...(r.warm.daemonNewNameMs && r.warm.daemonSameNameMs
      ? [
        `| warm activate (new name) with the daemon, ms | ${
          fmtStat(r.warm.daemonNewNameMs, 0)
        } | | ${(r.warm.daemonNewNameMs.median / r.warm.floorMs.median).toFixed(2)}x |`,
        `| warm activate (same name) with the daemon, ms | ${
          fmtStat(r.warm.daemonSameNameMs, 0)
        } | | ${(r.warm.daemonSameNameMs.median / r.warm.floorMs.median).toFixed(2)}x |`,
      ]
      : []),
    `| S3 requests (object GETs) during warm runs | ${r.warm.requests} (${r.warm.gets}) | | |`,
    ...(r.diagnose ? ["", diagnosis(r.diagnose)] : []),
  ].join("\n");
}

/**
 * Run the product from a copy on the guest's own disk, as a host would have it installed: the
 * repository reaches the guest over 9p, where each of the ~50 module reads of a start costs
 * what a local read does not (the empty script of the floor is local too).
 */
async function installLocally(): Promise<void> {
  const dest = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "thinimage-app-" });
  await must("/usr/bin/cp", [
    "-r",
    `${ROOT}/src`,
    `${ROOT}/bench`,
    `${ROOT}/deno.json`,
    `${ROOT}/deno.lock`,
    dest,
  ]);
  MAIN = `${dest}/src/main.ts`;
  ONE_PASS = `${dest}/bench/apply_one_pass.ts`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean" },
      json: { type: "boolean" },
      diagnose: { type: "boolean" },
      "apply-only": { type: "boolean" },
    },
  });
  const diag: Partial<Diagnosis> | undefined = values.diagnose ? {} : undefined;
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  // A cold round is three CLI activations and the naive pipeline: minutes under emulation.
  const coldRounds = Number(values.rounds ?? (values.quick ? 1 : 2));
  // About 20 MB and 2,700 entries: under emulation, more takes minutes per round.
  const trees = ["usr/share/perl", "usr/share/zoneinfo"];
  const t0 = performance.now();
  await installLocally();
  if (values["apply-only"]) {
    const a = await benchApply(rounds, trees, diag);
    if (values.json) return console.log(JSON.stringify({ apply: a }));
    const mb = a.layerBytes / 1e6;
    console.log(
      `Layer: ${
        mb.toFixed(1)
      } MB, ${a.entries} entries; ${rounds} rounds, medians (min-max) in s\n`,
    );
    console.log("| contender | s | vs GNU tar -x |\n|---|---|---|");
    for (
      const [name, st] of [["GNU tar -x", a.tarS], ["thinimage apply", a.thinimageS], [
        "one pass (pull's apply)",
        a.onePassS,
      ]] as const
    ) {
      console.log(`| ${name} | ${fmtStat(st, 2)} | ${(a.tarS.median / st.median).toFixed(2)}x |`);
    }
    return;
  }
  console.error("bench/vm: starting the S3 server in the VM");
  const s3 = await startS3();
  console.error(`bench/vm: S3 ready after ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const apply = await benchApply(rounds, trees, diag);
  const { cold, warm } = await benchActivate(coldRounds, values.quick ? 2 : 3, s3, diag);
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const res: VmResults = {
    kernel: (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim(),
    cpus: navigator.hardwareConcurrency,
    memMiB: Math.round(Number(/MemTotal:\s+(\d+)/.exec(meminfo)![1]) / 1024),
    apply,
    cold,
    warm,
    diagnose: diag as Diagnosis | undefined,
    seconds: Math.round((performance.now() - t0) / 1000),
  };
  console.error(`bench/vm: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  console.log(values.json ? JSON.stringify(res) : markdown(res));
}

if (import.meta.main) await main();
