/**
 * Fixtures of the end-to-end tests (inside the VM only): the loopback S3 server with the
 * fixture bucket, a scenario per test (state directory + loop-backed pool), the CLI run as a
 * child process with the real permission flags, reference trees extracted by GNU tar, and the
 * checks that SQLite agrees with the kernel and that nothing leaked.
 * @module
 */
import { assert, assertEquals } from "../../helpers/assert.ts";
import { describeTree, diffTrees, referenceExtract, type TreeEntry } from "../../helpers/tree.ts";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { permissionFlags } from "../../../src/cli/permissions.ts";

export const REPO = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");
const dec = new TextDecoder();

/** The S3 server's coordinates, starting it (and uploading the fixtures) when needed. */
export interface S3 {
  endpoint: string;
  bucket: string;
}

let s3: Promise<S3> | undefined;

/** Start (once) the loopback S3 server with the fixture bucket. */
export function startS3(): Promise<S3> {
  return s3 ??= (async () => {
    let endpoint = Deno.env.get("THINIMAGE_TEST_S3_ENDPOINT");
    let bucket = Deno.env.get("THINIMAGE_TEST_BUCKET");
    if (!endpoint || !bucket) {
      const out = await new Deno.Command("/usr/bin/bash", {
        args: [`${REPO}/scripts/s3-server.sh`, "env"],
        cwd: REPO,
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error("scripts/s3-server.sh env failed");
      const vars = Object.fromEntries(
        [...dec.decode(out.stdout).matchAll(/export (\w+)=['"]?([^'"\n]*)/g)].map((
          m,
        ) => [m[1], m[2]]),
      );
      endpoint = vars.THINIMAGE_TEST_S3_ENDPOINT;
      bucket = vars.THINIMAGE_TEST_BUCKET;
    }
    assert(endpoint && bucket, "no S3 endpoint");
    return { endpoint, bucket };
  })();
}

/** What one CLI run printed and returned. */
export interface CliResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

let scenarioCount = 0;

/** One test's world: a state directory and its own pool. */
export class Scenario {
  readonly pool: string;
  /** More hosts the CLI may reach besides the S3 server (a fault proxy's). */
  readonly extraNetHosts: string[] = [];
  constructor(readonly dir: string, readonly s3: S3) {
    this.pool = `thinimage-e2e${Deno.pid}-${scenarioCount++}`;
  }

  /** Make a scenario with a fresh state directory and pool (`dataSize`, e.g. "1G"). */
  static async create(dataSize = "1G"): Promise<Scenario> {
    const s3 = await startS3();
    const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "thinimage-e2e-" });
    const sc = new Scenario(dir, s3);
    const r = await sc.cli(["pool", "init", "--name", sc.pool, "--data-size", dataSize]);
    assertEquals(r.code, 0, r.stderr);
    return sc;
  }

  /** The argv of the CLI with the launcher's permissions (loopback S3 only). */
  argv(args: string[]): string[] {
    return [
      "run",
      "--no-check",
      ...permissionFlags({
        netHosts: [new URL(this.s3.endpoint).host, ...this.extraNetHosts],
        stateDir: this.dir,
      }),
      `${REPO}/src/main.ts`,
      "--state-dir",
      this.dir,
      ...args,
    ];
  }

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      THINIMAGE_S3_ENDPOINT: this.s3.endpoint,
      THINIMAGE_BUCKET: this.s3.bucket,
      ...extra,
    };
  }

  /** Run the CLI to its end. JSON output is parsed when `--json` was given. */
  async cli(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: this.argv(args),
      env: this.env(extraEnv),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = dec.decode(out.stdout);
    let json: unknown;
    if (args.includes("--json") && stdout.trim()) {
      try {
        json = JSON.parse(stdout);
      } catch { /* left undefined: the assertion on it says what came */ }
    }
    return { code: out.code, signal: out.signal, stdout, stderr: dec.decode(out.stderr), json };
  }

  /** Start the CLI without waiting. */
  spawn(args: string[], extraEnv: Record<string, string> = {}): Deno.ChildProcess {
    return new Deno.Command(Deno.execPath(), {
      args: this.argv(args),
      env: this.env(extraEnv),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** `activate IMAGE --json`, asserting success. */
  async activate(image: string, name = image): Promise<CliResult> {
    const r = await this.cli(["activate", image, "--name", name, "--json"]);
    assertEquals(r.code, 0, `activate ${image}: ${r.stderr}`);
    return r;
  }

  /** The tree an activation's device holds (mounted read-only for the look). */
  async activatedTree(name: string): Promise<TreeEntry[]> {
    const mnt = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "thinimage-look-" });
    await sh("/usr/bin/mount", "-o", "ro,noload", `/dev/mapper/thinimage-act-${name}`, mnt);
    try {
      return describeTree(mnt);
    } finally {
      await sh("/usr/bin/umount", mnt);
      await Deno.remove(mnt);
    }
  }

  /** Assert that activation `name` holds exactly the reference extraction of `image`. */
  async assertActivationMatches(name: string, image: string): Promise<void> {
    const got = await this.activatedTree(name);
    const want = await referenceTree(this.s3, image);
    const diffs = diffTrees(want, got);
    assertEquals(diffs, [], `activation ${name} differs from the reference of ${image}`);
  }

  /** Assert that SQLite agrees with the kernel and that nothing half-made or temporary is left. */
  async assertConsistent(): Promise<void> {
    const st = await this.cli(["status", "--json"]);
    assertEquals(st.code, 0, `status: ${st.stdout}\n${st.stderr}`);
    const ls = await this.cli(["ls", "--json"]);
    assertEquals(ls.code, 0, ls.stderr);
    const db = await this.query(
      "SELECT chain_id, state FROM chains WHERE state != 'sealed'",
    );
    assertEquals(db, [], "chains left unsealed");
    // Downloads are written under blobs/sha256/tmp and renamed into place once verified.
    const temps = [];
    for await (const e of walk(this.dir)) {
      if (/\/tmp\/./.test(e.slice(this.dir.length))) temps.push(e);
    }
    assertEquals(temps, [], "temporary files left");
    const mounts = await sh("/usr/bin/findmnt", "-rn", "-o", "TARGET");
    assertEquals(mounts.split("\n").filter((m) => m.startsWith(this.dir)), [], "mounts left");
  }

  /** Rows of a read-only query on the state database. */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(join(this.dir, "thinimage.db"), { readOnly: true });
    try {
      return db.prepare(sql).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  }

  /**
   * Remove every device, then the pool and its loop devices (in this process: a CLI run per
   * device costs seconds under emulation); assert that no device, thin id, loop device or
   * mount is left.
   */
  async teardown(): Promise<void> {
    const { ensurePool, listThinIds, removePool } = await import("../../../src/devmapper/pool.ts");
    const { ThinPool } = await import("../../../src/devmapper/thin.ts");
    const { StateDir } = await import("../../../src/state_dir.ts");
    const state = new StateDir(this.dir);
    const store = state.openStore();
    try {
      const info = await ensurePool(state.pool, store, this.pool);
      const thin = new ThinPool(store, info, state.deviceHost());
      for (const d of thin.list()) await thin.remove(d.name);
      assertEquals(await listThinIds(info), [], "thin ids left in the pool");
      await removePool(store, this.pool, { deleteFiles: true });
    } finally {
      store.close();
    }
    const left = (await sh("/usr/sbin/dmsetup", "ls")).split("\n").filter((l) =>
      l.includes(this.pool)
    );
    assertEquals(left, [], "dm devices left");
    const loops = await sh("/usr/sbin/losetup", "-a");
    assertEquals(loops.split("\n").filter((l) => l.includes(this.dir)), [], "loop devices left");
    await Deno.remove(this.dir, { recursive: true });
  }
}

const refs = new Map<string, Promise<TreeEntry[]>>();

/** The reference tree of a fixture image: its layers from S3, extracted by GNU tar. */
export function referenceTree(s3: S3, image: string): Promise<TreeEntry[]> {
  const key = `${s3.endpoint}/${s3.bucket}/${image}`;
  let p = refs.get(key);
  if (!p) {
    p = (async () => {
      const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: `thinimage-ref-${image}-` });
      const layers: string[] = [];
      for (let i = 1;; i++) {
        const res = await fetch(`${s3.endpoint}/${s3.bucket}/images/${image}/${i}.tar`);
        if (res.status === 404) {
          await res.body?.cancel();
          break;
        }
        assertEquals(res.status, 200, `GET ${image}/${i}.tar`);
        const file = join(dir, `${i}.tar`);
        let bytes = new Uint8Array(await res.arrayBuffer());
        if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
          bytes = new Uint8Array(
            await new Response(
              new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
            )
              .arrayBuffer(),
          );
        }
        await Deno.writeFile(file, bytes);
        layers.push(file);
      }
      assert(layers.length > 0, `no layers for ${image}`);
      await referenceExtract(layers, join(dir, "root"));
      return describeTree(join(dir, "root"));
    })();
    refs.set(key, p);
  }
  return p;
}

/** Run a tool; return stdout, throwing with stderr on failure. */
export async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    yield p;
    if (e.isDirectory && !e.isSymlink && e.name !== "mnt") yield* walk(p);
  }
}
