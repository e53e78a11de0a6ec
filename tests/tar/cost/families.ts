/**
 * Families of small hostile layers for the cost fuzzer, each built at any size `n`. Nothing
 * here imports `src/`: the layers are bytes, written the way an attacker would write them.
 *
 * A family's input grows about linearly with `n`; the runner (`run.ts`) checks that the time
 * and peak memory of `thinimage validate` and `thinimage apply` grow no faster than that.
 *
 * Families marked `applier` are the shapes that took the user-space applier before the
 * kernel-contained one (openat2) hours, gigabytes or an exit 1.
 *
 * @example
 * ```ts
 * import { FAMILIES, writeLayer } from "./families.ts";
 * const f = FAMILIES.find((f) => f.name === "global-pax-ignored")!;
 * await writeLayer(f, 1000, "/tmp/layer.tar.gz");
 * ```
 * @module
 */
import { paxRecords } from "../tar_builder.ts";

const enc = new TextEncoder();

/** Which command a family stresses. */
export type CostCommand = "validate" | "apply";

/** One shape of hostile layer. */
export interface Family {
  name: string;
  /** What it attacks, in one line. */
  about: string;
  /** Written gzip-compressed. */
  gzip: boolean;
  /** Commands to run it through. */
  commands: CostCommand[];
  /**
   * What this shape did to the user-space applier that came before the kernel-contained one
   * (why the family exists); absent when that applier already passed.
   */
  applier?: string;
  /** Sizes: the test checks `test` against `4 * test`; the benchmark runs `bench` in order. */
  test: number;
  /** The test's size for `apply` when smaller (the current applier costs ~1 ms an entry). */
  testApply?: number;
  bench: number[];
  /** The tar stream (uncompressed), in chunks. */
  build(n: number): Iterable<Uint8Array>;
}

// --- headers -------------------------------------------------------------------------------

interface H {
  name?: string;
  type?: string;
  size?: number;
  linkname?: string;
  mode?: number;
  mtime?: number;
}

/** One ustar header; names longer than 100 bytes must go in a pax or GNU record instead. */
function header(h: H): Uint8Array {
  const b = new Uint8Array(512);
  put(b, 0, h.name ?? "");
  octal(b, 100, 8, h.mode ?? (h.type === "5" ? 0o755 : 0o644));
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, h.size ?? 0);
  octal(b, 136, 12, h.mtime ?? 1700000000);
  b[156] = (h.type ?? "0").charCodeAt(0);
  put(b, 157, h.linkname ?? "");
  put(b, 257, "ustar\x0000");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  put(b, 148, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function put(b: Uint8Array, off: number, s: string): void {
  const v = enc.encode(s);
  if (v.length > 100 && off < 257) throw new Error(`field too long: ${s.slice(0, 40)}...`);
  b.set(v, off);
}

function octal(b: Uint8Array, off: number, len: number, v: number): void {
  put(b, off, v.toString(8).padStart(len - 1, "0") + "\0");
}

function pad(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

/** An entry: its pax header when a field is too long for ustar, the header, the data. */
function* entry(h: H & { data?: Uint8Array }): Iterable<Uint8Array> {
  const records: [string, string][] = [];
  let name = h.name ?? "";
  let linkname = h.linkname ?? "";
  if (enc.encode(name).length > 100) {
    records.push(["path", name]);
    name = "long";
  }
  if (enc.encode(linkname).length > 100) {
    records.push(["linkpath", linkname]);
    linkname = "long";
  }
  if (records.length) yield* pax(records);
  const size = h.data?.length ?? h.size ?? 0;
  yield header({ ...h, name, linkname, size });
  if (h.data) {
    yield h.data;
    yield pad(h.data.length);
  }
}

/** A pax header, per-entry (`x`) or global (`g`). */
function* pax(records: [string, string][], global = false): Iterable<Uint8Array> {
  const body = paxRecords(records);
  yield header({ name: "PaxHeader", type: global ? "g" : "x", size: body.length });
  yield body;
  yield pad(body.length);
}

/** A GNU long-name (`L`) or long-link (`K`) record. */
function* gnuLong(type: "L" | "K", value: string): Iterable<Uint8Array> {
  const v = enc.encode(value + "\0");
  const h = header({ name: "././@LongLink", type, size: v.length });
  h.set(enc.encode("ustar  \0"), 257); // GNU magic, then the checksum again
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  yield h;
  yield v;
  yield pad(v.length);
}

const END = new Uint8Array(1024);
const MiB = 1 << 20;

/** A component of `len` bytes, unique per `i`. */
function comp(i: number, len: number, fill = "c"): string {
  const s = `${i}`;
  return s + fill.repeat(len - s.length);
}

/** 40,000 ignored pax keys: under the 1 MiB limit for one header and for all in force. */
function* bigGlobal(): Iterable<Uint8Array> {
  const records: [string, string][] = [];
  for (let i = 0; i < 40_000; i++) {
    records.push([`SCHILY.ino${String(i).padStart(5, "0")}`, "v"]);
  }
  yield* pax(records, true);
}

// --- families ------------------------------------------------------------------------------

/** Every family: the shapes that first set the memory budget, then others found since. */
export const FAMILIES: Family[] = [
  {
    name: "global-pax-ignored",
    about: "a global pax header of 40,000 ignored keys, then n small entries",
    gzip: true,
    commands: ["validate", "apply"],
    test: 1000,
    testApply: 250,
    bench: [1000, 4000, 16000, 64000],
    *build(n) {
      yield* bigGlobal();
      for (let i = 0; i < n; i++) yield* entry({ name: `f${i}` });
      yield END;
    },
  },
  {
    name: "global-pax-churn",
    about: "a global pax header of 40,000 ignored keys, then n tiny global headers",
    gzip: true,
    commands: ["validate"],
    test: 1000,
    bench: [1000, 4000, 16000, 64000],
    *build(n) {
      yield* bigGlobal();
      for (let i = 0; i < n; i++) yield* pax([["comment", `${i}`]], true);
      yield* entry({ name: "f" });
      yield END;
    },
  },
  {
    name: "gzip-zeros",
    about: "gzip of n MiB of zeros (an empty archive and its padding)",
    gzip: true,
    commands: ["validate", "apply"],
    test: 64,
    bench: [64, 256, 1024, 3072],
    *build(n) {
      const z = new Uint8Array(MiB);
      for (let i = 0; i < n; i++) yield z;
    },
  },
  {
    name: "gzip-zero-file",
    about: "gzip of one file of n MiB of zeros (a legitimate layer)",
    gzip: true,
    commands: ["validate", "apply"],
    test: 32,
    testApply: 16,
    bench: [32, 128, 512, 2048],
    *build(n) {
      yield header({ name: "zeros", size: n * MiB });
      const z = new Uint8Array(MiB);
      for (let i = 0; i < n; i++) yield z;
      yield END;
    },
  },
  {
    name: "dir-file-flip",
    about: "n unique files, then a name flipping between directory and file n times",
    gzip: true,
    commands: ["validate", "apply"],
    test: 2000,
    testApply: 250,
    bench: [2000, 8000, 32000, 128000],
    *build(n) {
      yield* entry({ name: "u", type: "5" });
      for (let i = 0; i < n; i++) yield* entry({ name: `u/f${i}` });
      for (let i = 0; i < n; i++) yield* entry({ name: "x", type: i % 2 ? "0" : "5" });
      yield END;
    },
  },
  {
    name: "opaque-repeat",
    about: "a directory of n files this layer wrote, then its opaque marker n times",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "apply.ts lists and lstats every child at each marker (quadratic)",
    test: 1000,
    testApply: 200,
    bench: [1000, 4000, 16000],
    *build(n) {
      yield* entry({ name: "d", type: "5" });
      for (let i = 0; i < n; i++) yield* entry({ name: `d/f${i}` });
      for (let i = 0; i < n; i++) yield* entry({ name: "d/.wh..wh..opq" });
      yield END;
    },
  },
  {
    name: "whiteout-repeat",
    about: "a directory of n files this layer wrote, then its whiteout n times",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "apply.ts walks the directory at each whiteout (quadratic)",
    test: 1000,
    testApply: 200,
    bench: [1000, 4000, 16000],
    *build(n) {
      yield* entry({ name: "d", type: "5" });
      for (let i = 0; i < n; i++) yield* entry({ name: `d/f${i}` });
      for (let i = 0; i < n; i++) yield* entry({ name: ".wh.d" });
      yield END;
    },
  },
  {
    name: "unique-long-paths",
    about: "n unique paths of ~3.8 KB (pax path records)",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "apply.ts keeps every path written (and chroot.ts every directory)",
    test: 2000,
    testApply: 250,
    bench: [2000, 8000, 32000, 60000],
    *build(n) {
      // 15 shared ancestors of 250 bytes, then a unique 250-byte leaf.
      const dir = Array.from({ length: 14 }, (_, i) => comp(i, 250, "d")).join("/");
      for (let i = 0; i < n; i++) yield* entry({ name: `${dir}/${comp(i, 250, "f")}` });
      yield END;
    },
  },
  {
    name: "symlink-through",
    about: "n pairs of 'symlink sK -> c, then a 125-component path through sK'",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "chroot.ts caches every directory resolved through every link (4.4 GB at 10k)",
    test: 200,
    testApply: 50,
    bench: [500, 2000, 10000],
    *build(n) {
      yield* entry({ name: "c", type: "5" });
      const deep = "a/".repeat(123);
      for (let i = 0; i < n; i++) {
        yield* entry({ name: `s${i}`, type: "2", linkname: "c" });
        yield* entry({ name: `s${i}/${deep}f${i}` });
      }
      yield END;
    },
  },
  {
    name: "padded-symlink-chain",
    about: "39 chained symlinks padded with 'a/../' x 817, followed at every component, n times",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "chroot.ts follows up to 127 x 40 links per path in user space (~25 min at 100)",
    test: 2,
    bench: [2, 8, 32, 100],
    *build(n) {
      yield* entry({ name: "a", type: "5" });
      yield* entry({ name: "l0", type: "2", linkname: "." });
      const padding = "a/../".repeat(817);
      for (let k = 1; k <= 39; k++) {
        yield* entry({ name: `l${k}`, type: "2", linkname: `${padding}l${k - 1}` });
      }
      const through = "l39/".repeat(126);
      for (let i = 0; i < n; i++) yield* entry({ name: `${through}f${i}` });
      yield END;
    },
  },
  {
    name: "hardlinks-one-file",
    about: "one file and n hardlinks to it (ext4 refuses the 65,001st: EMLINK)",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "EMLINK from link(2) ends apply with exit 1 (bench size 66,000)",
    test: 2000,
    testApply: 250,
    bench: [2000, 8000, 66000],
    *build(n) {
      yield* entry({ name: "f", data: enc.encode("x") });
      for (let i = 0; i < n; i++) yield* entry({ name: `h${i}`, type: "1", linkname: "f" });
      yield END;
    },
  },
  {
    name: "path-max-through-symlink",
    about: "n files whose path, through a symlink, is longer than PATH_MAX",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "ENAMETOOLONG from the host path ends apply with exit 1",
    test: 20,
    bench: [20, 80, 320, 1280],
    *build(n) {
      // A 3,855-byte directory chain, a symlink to it, then 3.8 KB paths through the symlink.
      const parts = Array.from({ length: 15 }, (_, i) => comp(i, 255, "d"));
      for (let i = 1; i <= parts.length; i++) {
        yield* entry({ name: parts.slice(0, i).join("/"), type: "5" });
      }
      yield* entry({ name: "s", type: "2", linkname: parts.join("/") });
      const below = Array.from({ length: 14 }, (_, i) => comp(i, 255, "e")).join("/");
      for (let i = 0; i < n; i++) yield* entry({ name: `s/${below}/${comp(i, 200, "f")}` });
      yield END;
    },
  },
  // --- found since ---------------------------------------------------------------------------
  {
    name: "pax-many-records",
    about: "n entries, each with a pax header of 500 ignored records",
    gzip: true,
    commands: ["validate", "apply"],
    test: 50,
    testApply: 50,
    bench: [100, 400, 1600, 6400],
    *build(n) {
      const records: [string, string][] = [];
      for (let k = 0; k < 500; k++) records.push([`SCHILY.xattr.user.k${k}`, "v"]);
      for (let i = 0; i < n; i++) {
        yield* pax([...records, ["path", `f${i}`]]);
        yield header({ name: "ignored" });
      }
      yield END;
    },
  },
  {
    name: "pax-comment-bomb",
    about: "n entries, each with a 1 MiB pax comment (compresses ~1000:1)",
    gzip: true,
    commands: ["validate", "apply"],
    test: 16,
    bench: [16, 64, 256, 1024],
    *build(n) {
      const big = "y".repeat(MiB - 64);
      for (let i = 0; i < n; i++) {
        yield* pax([["comment", big]]);
        yield header({ name: `f${i}` });
      }
      yield END;
    },
  },
  {
    name: "gnu-long-names",
    about: "n files with ~4,000-byte GNU long names and symlinks with 4,095-byte long links",
    gzip: true,
    commands: ["validate", "apply"],
    test: 200,
    testApply: 100,
    bench: [500, 2000, 8000, 32000],
    *build(n) {
      const dir = Array.from({ length: 14 }, (_, i) => comp(i, 255, "g")).join("/");
      const target = "t".repeat(4095);
      for (let i = 0; i < n; i++) {
        yield* gnuLong("L", `${dir}/${comp(i, 200, "n")}`);
        yield header({ name: "ignored" });
        yield* gnuLong("L", `l${i}`);
        yield* gnuLong("K", target);
        yield header({ name: "ignored", type: "2", linkname: "ignored" });
      }
      yield END;
    },
  },
  {
    name: "huge-declared-size",
    about: "a file declaring 8 GiB, then only n MiB of data (truncated)",
    gzip: true,
    commands: ["validate", "apply"],
    test: 32,
    bench: [32, 128, 512, 2048],
    *build(n) {
      yield header({ name: "big", size: 8 * 1024 ** 3 });
      const d = new Uint8Array(MiB).fill(0x61);
      for (let i = 0; i < n; i++) yield d;
    },
  },
  {
    name: "deep-paths",
    about: "n unique files 127 directories deep, spelled with './' and '//' to force normalizing",
    gzip: true,
    commands: ["validate", "apply"],
    test: 500,
    testApply: 100,
    bench: [1000, 4000, 16000, 64000],
    *build(n) {
      const deep = "./" + "d//".repeat(127);
      for (let i = 0; i < n; i++) yield* entry({ name: `${deep}f${i}` });
      yield END;
    },
  },
  {
    name: "tiny-entries",
    about: "n empty files in one directory (the baseline)",
    gzip: true,
    commands: ["validate", "apply"],
    test: 2000,
    testApply: 250,
    bench: [5000, 20000, 80000, 320000],
    *build(n) {
      yield* entry({ name: "d", type: "5" });
      for (let i = 0; i < n; i++) yield* entry({ name: `d/f${i}` });
      yield END;
    },
  },
  {
    name: "many-long-dirs",
    about: "n unique directories with ~4,000-byte paths (what the applier keeps to set times)",
    gzip: true,
    commands: ["validate", "apply"],
    applier: "apply.ts keeps every directory path (and chroot.ts caches each)",
    test: 500,
    testApply: 100,
    bench: [500, 2000, 8000, 32000],
    *build(n) {
      const dir = Array.from({ length: 14 }, (_, i) => comp(i, 255, "m")).join("/");
      for (let i = 1; i <= 14; i++) {
        yield* entry({ name: dir.split("/").slice(0, i).join("/"), type: "5" });
      }
      for (let i = 0; i < n; i++) yield* entry({ name: `${dir}/${comp(i, 200, "n")}`, type: "5" });
      yield END;
    },
  },
  {
    name: "hardlink-long-targets",
    about: "a directory replaced by a file, then n hardlinks to a ~4,000-byte path",
    gzip: true,
    commands: ["validate", "apply"],
    test: 1000,
    testApply: 250,
    bench: [1000, 4000, 16000, 64000],
    *build(n) {
      yield* entry({ name: "k", type: "5" });
      yield* entry({ name: "k/child" });
      yield* entry({ name: "k" }); // a directory replaced by a file
      const target = Array.from({ length: 15 }, (_, i) => comp(i, 255, "h")).join("/");
      yield* entry({ name: target, data: enc.encode("x") });
      for (let i = 0; i < n; i++) yield* entry({ name: `h${i}`, type: "1", linkname: target });
      yield END;
    },
  },
  {
    name: "flip-under-deep-tree",
    about: "a 4,000-byte tree of n files, then its top flipping directory/file n times",
    gzip: true,
    commands: ["validate", "apply"],
    test: 500,
    testApply: 100,
    bench: [1000, 4000, 16000, 64000],
    *build(n) {
      const dir = Array.from({ length: 14 }, (_, i) => comp(i, 255, "t")).join("/");
      for (let i = 0; i < n; i++) yield* entry({ name: `${dir}/${comp(i, 200, "f")}` });
      const top = dir.split("/")[0];
      for (let i = 0; i < n; i++) yield* entry({ name: top, type: i % 2 ? "5" : "0" });
      yield END;
    },
  },
  {
    name: "trailing-zeros",
    about: "a plain tar of one file, then n MiB of zeros after the end marker",
    gzip: false,
    commands: ["validate", "apply"],
    test: 64,
    bench: [64, 256, 1024],
    *build(n) {
      yield* entry({ name: "f", data: enc.encode("x") });
      yield END;
      const z = new Uint8Array(MiB);
      for (let i = 0; i < n; i++) yield z;
    },
  },
];

/** Write family `f` at size `n` to `path` (gzip when the family says so). Returns its bytes. */
export async function writeLayer(f: Family, n: number, path: string): Promise<number> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunks = f.build(n)[Symbol.iterator]();
  // Batched: one write per ~1 MiB, not per 512-byte header.
  const batches = new ReadableStream<Uint8Array>({
    pull(ctl) {
      const parts: Uint8Array[] = [];
      let size = 0;
      while (size < MiB) {
        const r = chunks.next();
        if (r.done) break;
        parts.push(r.value);
        size += r.value.length;
      }
      if (parts.length === 0) return ctl.close();
      const out = new Uint8Array(size);
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      ctl.enqueue(out);
    },
  });
  const stream = f.gzip
    ? batches.pipeThrough(new CompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>)
    : batches;
  await stream.pipeTo(file.writable);
  return (await Deno.stat(path)).size;
}
