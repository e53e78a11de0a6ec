/**
 * Builds the fixture images that mirror the public bucket (see the project notes, bucket.md):
 * `golang`, `node`, `python` with five layers each, layers 1-3 byte-identical in all three and
 * layer 4 shared by node and python; plus `hostile` (layers 1-2 shared, layer 3 holds a
 * `../escape` entry) and `gzipped` (layer 2 is a gzip-compressed tar).
 *
 * Layers are real file trees packed by GNU tar (`--numeric-owner`, names without `./`) with
 * absolute symlinks, hardlinks, setuid/setgid files and OCI whiteouts in upper layers.
 * Deterministic: fixed mtimes, sorted names and seeded file contents give identical bytes on
 * every run (for a given GNU tar and gzip).
 *
 * Usage:
 *   deno run -A scripts/make-fixtures.ts --out DIR [--full-size | --scale N]
 *       writes DIR/images/NAME/N.tar
 *   deno run -A scripts/make-fixtures.ts --endpoint URL --bucket PUBLIC [--private-bucket P]
 *       [--version V] [--full-size] [--only golang,node]
 *       uploads (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), makes PUBLIC
 *       anonymously readable, copies `node` into the private bucket, writes `fixtures-version`
 *   deno run -A scripts/make-fixtures.ts --from DIR --endpoint URL --bucket PUBLIC ...
 *       uploads the layers an earlier `--out DIR` wrote, building nothing (the device-test VM
 *       uploads what the host built: building there under emulation costs about a minute)
 *
 * Sizes are the real bucket's divided by 500 by default (about 3 MB in all); `--full-size`
 * builds them at their real sizes (about 1.5 GB of unique bytes), for benchmarks, and
 * `--scale N` divides them by N (the sharing measurement needs layers big enough that a file
 * system's fixed costs do not dominate, yet small enough for the emulated VM).
 * @module
 */
import { parseArgs } from "node:util";
import {
  CreateBucketCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";

const TAR = "/usr/bin/tar";
const GZIP = "/usr/bin/gzip";
/** 2023-11-14T22:13:20Z: every entry's mtime. */
const MTIME = 1_700_000_000;

/** Real layer sizes from the public bucket, in bytes (bucket.md). */
const REAL = {
  base1: 143_595_520,
  base2: 49_670_144,
  base3: 188_129_280,
  golang4: 242_172_416,
  golang5: 260_531_712,
  deps4: 569_617_408,
  node5: 21_504,
  python5: 18_808_832,
};

type Entry =
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "file"; path: string; size?: number; text?: string; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "hardlink"; path: string; target: string };

/** One layer: its entries and, optionally, bulk bytes spread over files under `bulkDir`. */
interface LayerSpec {
  name: string;
  entries: Entry[];
  bulkDir?: string;
  bulkBytes?: number;
  /** Extra tar arguments (the hostile layer's rename). */
  tarArgs?: string[];
  gzip?: boolean;
}

function layers(scale: number): Record<string, LayerSpec> {
  const bulk = (n: number) => Math.max(0, Math.round(n / scale));
  const certs: Entry[] = [];
  for (const name of ["ISRG_Root_X1", "DigiCert_Global_Root_G2", "GlobalSign_Root_CA"]) {
    certs.push(
      { kind: "file", path: `usr/share/ca-certificates/mozilla/${name}.crt`, size: 1900 },
      // Debian links the certificates with absolute targets.
      {
        kind: "symlink",
        path: `etc/ssl/certs/${name}.pem`,
        target: `/usr/share/ca-certificates/mozilla/${name}.crt`,
      },
    );
  }
  return {
    base1: {
      name: "base1",
      bulkDir: "usr/lib/x86_64-linux-gnu",
      bulkBytes: bulk(REAL.base1),
      entries: [
        { kind: "symlink", path: "bin", target: "usr/bin" },
        { kind: "symlink", path: "lib", target: "usr/lib" },
        { kind: "dir", path: "etc/alternatives" },
        { kind: "dir", path: "tmp", mode: 0o1777 },
        { kind: "dir", path: "root", mode: 0o700 },
        {
          kind: "file",
          path: "etc/os-release",
          text: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        },
        { kind: "file", path: "etc/passwd", text: "root:x:0:0:root:/root:/bin/bash\n" },
        { kind: "file", path: "etc/group", text: "root:x:0:\nshadow:x:42:\n" },
        { kind: "file", path: "etc/shadow", text: "root:*:19000:0:99999:7:::\n", mode: 0o640 },
        {
          kind: "file",
          path: "etc/motd",
          text: "The programs included with Debian are free software.\n",
        },
        { kind: "file", path: "usr/bin/aclocal-1.16", size: 30_000, mode: 0o755 },
        { kind: "symlink", path: "etc/alternatives/aclocal", target: "/usr/bin/aclocal-1.16" },
        { kind: "symlink", path: "usr/bin/aclocal", target: "/etc/alternatives/aclocal" },
        { kind: "file", path: "usr/bin/perl", size: 20_000, mode: 0o755 },
        { kind: "hardlink", path: "usr/bin/perl5.36.0", target: "usr/bin/perl" },
        { kind: "file", path: "usr/bin/passwd", size: 8_000, mode: 0o4755 },
        { kind: "file", path: "usr/bin/su", size: 8_000, mode: 0o4755 },
        { kind: "file", path: "usr/bin/wall", size: 4_000, mode: 0o2755 },
        { kind: "file", path: "usr/bin/bash", size: 12_000, mode: 0o755 },
        { kind: "symlink", path: "usr/bin/sh", target: "bash" },
        { kind: "file", path: "var/cache/apt/pkgcache.bin", size: 9_000 },
        { kind: "file", path: "usr/share/doc/base-files/copyright", text: "Debian\n" },
      ],
    },
    base2: {
      name: "base2",
      bulkDir: "usr/lib/x86_64-linux-gnu/gnupg",
      bulkBytes: bulk(REAL.base2),
      entries: [
        ...certs,
        { kind: "file", path: "usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0", size: 16_000 },
        {
          kind: "symlink",
          path: "usr/lib/x86_64-linux-gnu/libcurl.so.4",
          target: "libcurl.so.4.8.0",
        },
        { kind: "file", path: "usr/bin/curl", size: 6_000, mode: 0o755 },
        // Whiteout: apt's cache from layer 1 is gone.
        { kind: "file", path: "var/cache/apt/.wh.pkgcache.bin", size: 0 },
      ],
    },
    base3: {
      name: "base3",
      bulkDir: "usr/lib/gcc/x86_64-linux-gnu/12",
      bulkBytes: bulk(REAL.base3),
      entries: [
        { kind: "file", path: "usr/bin/gpg", size: 10_000, mode: 0o755 },
        { kind: "hardlink", path: "usr/bin/gpg2", target: "usr/bin/gpg" },
        { kind: "file", path: "usr/bin/newgrp", size: 4_000, mode: 0o4755 },
        { kind: "file", path: "etc/.wh.motd", size: 0 },
        { kind: "symlink", path: "etc/alternatives/gpg", target: "/usr/bin/gpg" },
      ],
    },
    golang4: {
      name: "golang4",
      bulkDir: "usr/local/go/pkg/tool/linux_arm64",
      bulkBytes: bulk(REAL.golang4),
      entries: [
        { kind: "file", path: "usr/local/go/bin/go", size: 14_000, mode: 0o755 },
        { kind: "file", path: "usr/local/go/bin/gofmt", size: 7_000, mode: 0o755 },
        { kind: "file", path: "usr/local/go/doc/go_spec.html", size: 3_000 },
        { kind: "symlink", path: "usr/local/bin/go", target: "/usr/local/go/bin/go" },
        // Opaque whiteout: whatever apt cached below is hidden.
        { kind: "file", path: "var/cache/apt/.wh..wh..opq", size: 0 },
      ],
    },
    golang5: {
      name: "golang5",
      bulkDir: "go/pkg/mod/cache/download",
      bulkBytes: bulk(REAL.golang5),
      entries: [
        { kind: "dir", path: "go/bin", mode: 0o777 },
        { kind: "file", path: "usr/local/go/.wh.doc", size: 0 },
        { kind: "file", path: "go/pkg/mod/golang.org/x/text@v0.14.0/LICENSE", size: 1_500 },
      ],
    },
    deps4: {
      name: "deps4",
      bulkDir: "usr/lib/x86_64-linux-gnu/buildpack",
      bulkBytes: bulk(REAL.deps4),
      entries: [
        { kind: "file", path: "usr/include/zlib.h", size: 9_000 },
        { kind: "file", path: "usr/bin/mount", size: 5_000, mode: 0o4755 },
        { kind: "file", path: "usr/bin/git", size: 20_000, mode: 0o755 },
        { kind: "hardlink", path: "usr/lib/git-core/git", target: "usr/bin/git" },
        { kind: "file", path: "usr/share/doc/.wh..wh..opq", size: 0 },
        { kind: "file", path: "usr/share/doc/git/README", text: "git\n" },
        { kind: "symlink", path: "etc/alternatives/cc", target: "/usr/bin/gcc-12" },
      ],
    },
    node5: {
      name: "node5",
      entries: [
        { kind: "file", path: "usr/local/bin/docker-entrypoint.sh", size: 300, mode: 0o755 },
        {
          kind: "symlink",
          path: "docker-entrypoint.sh",
          target: "/usr/local/bin/docker-entrypoint.sh",
        },
        { kind: "file", path: "etc/.wh.shadow", size: 0 },
      ],
    },
    python5: {
      name: "python5",
      bulkDir: "usr/local/lib/python3.12",
      bulkBytes: bulk(REAL.python5),
      entries: [
        { kind: "file", path: "usr/local/bin/python3.12", size: 12_000, mode: 0o755 },
        { kind: "symlink", path: "usr/local/bin/python3", target: "python3.12" },
        { kind: "symlink", path: "usr/local/bin/python", target: "/usr/local/bin/python3" },
      ],
    },
    hostile3: {
      name: "hostile3",
      entries: [
        { kind: "file", path: "usr/share/innocent.txt", text: "nothing to see\n" },
        { kind: "file", path: "escape", text: "written outside the image root\n" },
      ],
      // GNU tar would strip the `../`; -P keeps it, as a hostile publisher's tar would.
      tarArgs: ["-P", "--transform=s,^escape$,../escape,"],
    },
    gzipped2: {
      name: "gzipped2",
      gzip: true,
      entries: [
        { kind: "file", path: "usr/share/gzipped/data.bin", size: 40_000 },
        {
          kind: "symlink",
          path: "usr/share/gzipped/latest",
          target: "/usr/share/gzipped/data.bin",
        },
      ],
    },
  };
}

/** image -> layer spec names, in order. */
const IMAGES: Record<string, string[]> = {
  golang: ["base1", "base2", "base3", "golang4", "golang5"],
  node: ["base1", "base2", "base3", "deps4", "node5"],
  python: ["base1", "base2", "base3", "deps4", "python5"],
  hostile: ["base1", "base2", "hostile3"],
  gzipped: ["base1", "gzipped2"],
};

/** Deterministic bytes for a file: xorshift128 seeded from its path and size. */
function contentFor(path: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = 0x9e3779b9, y = 0x243f6a88, z = 0xb7e15162, w = size >>> 0;
  for (let i = 0; i < path.length; i++) {
    x = Math.imul(x ^ path.charCodeAt(i), 0x01000193) >>> 0;
    y = (y + x) >>> 0;
  }
  for (let i = 0; i < words.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    words[i] = w;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

async function buildTree(root: string, spec: LayerSpec): Promise<void> {
  const entries = [...spec.entries];
  if (spec.bulkDir && spec.bulkBytes) {
    // Library-sized files (at most 8 MiB each) up to the layer's share of bytes.
    const chunk = 8 * 1024 * 1024;
    let left = spec.bulkBytes;
    for (let i = 0; left > 0; i++) {
      const size = Math.min(chunk, left);
      entries.push({ kind: "file", path: `${spec.bulkDir}/lib${spec.name}-${i}.so`, size });
      left -= size;
    }
  }
  const dirs = new Set<string>();
  const parentsOf = (p: string) => {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  };
  for (const e of entries) {
    parentsOf(e.path);
    const full = `${root}/${e.path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    switch (e.kind) {
      case "dir":
        await Deno.mkdir(full, { recursive: true });
        dirs.add(e.path);
        break;
      case "file":
        await Deno.writeFile(
          full,
          e.text !== undefined ? new TextEncoder().encode(e.text) : contentFor(e.path, e.size ?? 0),
        );
        break;
      case "symlink":
        await Deno.symlink(e.target, full);
        break;
      case "hardlink":
        await Deno.link(`${root}/${e.target}`, full);
        break;
    }
  }
  // Modes last (umask-independent): directories 0755 unless given, files 0644 unless given.
  for (const d of dirs) await Deno.chmod(`${root}/${d}`, 0o755);
  for (const e of entries) {
    if (e.kind === "dir") await Deno.chmod(`${root}/${e.path}`, e.mode ?? 0o755);
    if (e.kind === "file") await Deno.chmod(`${root}/${e.path}`, e.mode ?? 0o644);
  }
}

async function run(cmd: string, args: string[], stdout?: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  if (stdout) await Deno.writeFile(stdout, out.stdout);
}

/** Build every layer once into `work`; returns spec name -> tar (or tar.gz) path. */
async function buildLayers(
  work: string,
  scale: number,
  images: string[],
): Promise<Map<string, string>> {
  const specs = layers(scale);
  const needed = new Set(images.flatMap((i) => IMAGES[i]));
  const out = new Map<string, string>();
  for (const name of [...needed].sort()) {
    const spec = specs[name];
    const tree = `${work}/trees/${name}`;
    await Deno.mkdir(tree, { recursive: true });
    await buildTree(tree, spec);
    const tops: string[] = [];
    for await (const e of Deno.readDir(tree)) tops.push(e.name);
    tops.sort();
    const tarPath = `${work}/${name}.tar`;
    await run(TAR, [
      "--create",
      `--file=${tarPath}`,
      "--format=gnu",
      "--sort=name",
      `--mtime=@${MTIME}`,
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      ...(spec.tarArgs ?? []),
      "-C",
      tree,
      ...tops,
    ]);
    if (spec.gzip) {
      // -n: no name or timestamp in the gzip header, so the bytes do not depend on when.
      await run(GZIP, ["-n", "-9", "-c", tarPath], `${tarPath}.gz`);
      out.set(name, `${tarPath}.gz`);
    } else {
      out.set(name, tarPath);
    }
    await Deno.remove(tree, { recursive: true });
  }
  return out;
}

/** Every fixture object: key -> local file. */
function objects(built: Map<string, string>, images: string[]): [string, string][] {
  const list: [string, string][] = [];
  for (const image of images) {
    IMAGES[image].forEach((s, i) => list.push([`images/${image}/${i + 1}.tar`, built.get(s)!]));
  }
  return list;
}

async function upload(
  endpoint: string,
  bucket: string,
  privateBucket: string | undefined,
  version: string | undefined,
  list: [string, string][],
): Promise<void> {
  const accessKeyId = Deno.env.get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = Deno.env.get("AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) {
    throw new Error("uploading needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  const s3 = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: new FetchHttpHandler(),
  });
  const ensureBucket = async (name: string) => {
    try {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
    } catch (err) {
      if (!(err instanceof S3ServiceException && /BucketAlready/.test(err.name))) throw err;
    }
  };
  await ensureBucket(bucket);
  await s3.send(
    new PutBucketPolicyCommand({
      Bucket: bucket,
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{
          Effect: "Allow",
          Principal: "*",
          Action: ["s3:GetObject", "s3:ListBucket"],
          Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
        }],
      }),
    }),
  );
  const put = async (b: string, key: string, file: string) => {
    const body = await Deno.readFile(file);
    await s3.send(new PutObjectCommand({ Bucket: b, Key: key, Body: body }));
    console.error(`  ${b}/${key} ${body.length} bytes`);
  };
  for (const [key, file] of list) await put(bucket, key, file);
  if (privateBucket) {
    await ensureBucket(privateBucket);
    for (const [key, file] of list) {
      if (key.startsWith("images/node/")) await put(privateBucket, key, file);
    }
  }
  // Last, so an interrupted run is redone by scripts/s3-server.sh.
  if (version !== undefined) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "fixtures-version", Body: version }));
  }
  s3.destroy();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      endpoint: { type: "string" },
      bucket: { type: "string" },
      "private-bucket": { type: "string" },
      version: { type: "string" },
      "full-size": { type: "boolean" },
      scale: { type: "string" },
      only: { type: "string" },
      from: { type: "string" },
    },
  });
  const images = values.only ? values.only.split(",") : Object.keys(IMAGES);
  for (const i of images) if (!IMAGES[i]) throw new Error(`unknown fixture image ${i}`);
  if (!values.out && !(values.endpoint && values.bucket) || (values.from && values.out)) {
    console.error(
      "usage: make-fixtures.ts --out DIR | [--from DIR] --endpoint URL --bucket B [--private-bucket P] [--version V] [--full-size | --scale N]",
    );
    Deno.exit(2);
  }
  if (values.from) {
    const from = values.from;
    const list: [string, string][] = images.flatMap((image) =>
      IMAGES[image].map((_, i): [string, string] => {
        const key = `images/${image}/${i + 1}.tar`;
        return [key, `${from}/${key}`];
      })
    );
    await upload(values.endpoint!, values.bucket!, values["private-bucket"], values.version, list);
    return;
  }
  const scale = values["full-size"] ? 1 : Number(values.scale ?? 500);
  if (!Number.isInteger(scale) || scale < 1) {
    console.error(`--scale wants a positive integer, not ${values.scale}`);
    Deno.exit(2);
  }
  const work = await Deno.makeTempDir({ prefix: "thinimage-fixtures-" });
  try {
    const list = objects(await buildLayers(work, scale, images), images);
    if (values.out) {
      for (const [key, file] of list) {
        const dest = `${values.out}/${key}`;
        await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
        await Deno.copyFile(file, dest);
      }
      console.error(`wrote ${list.length} layers under ${values.out}/images/`);
    }
    if (values.endpoint && values.bucket) {
      await upload(values.endpoint, values.bucket, values["private-bucket"], values.version, list);
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) await main();
