/**
 * Layer validation and application speed against the floors: `thinimage validate` vs
 * `sha256sum` of the same file (reading it once), and `thinimage apply` vs GNU `tar -x` of the
 * same layer into the same kind of target. Rounds alternate between the contenders; the table
 * shows medians and the peak RSS of each process (GNU time's %M).
 *
 * Two layers: `--layer trees` (default) is built from real trees under /usr (Python, docs, man
 * pages, headers: ~400 MB of mostly small files); `--layer small` is 120,000 generated entries
 * (files of 0-4 KiB in 1,200 directories, a few symlinks and hardlinks), where the cost per
 * entry is all there is. `--target tmpfs` (default) extracts onto a tmpfs the benchmark mounts
 * (root only; a directory on disk when it cannot); `--target disk` onto ext4 made afresh each
 * round, as the product makes it on a thin volume (journaled, by `mkfsExt4`), in a sparse
 * file on /var/tmp mounted through a loop device (root only). The table says which.
 *
 * Why a fresh filesystem, and no deletion between contenders: on an ext4 with no journal
 * (this machine's root), inodes deleted in the last minutes are skipped one by one by every
 * inode allocation (`recently_deleted` in ext4's `find_inode_bit`), so whichever contender ran
 * right after an `rm -rf` of the previous tree spent 10-20x longer creating files, GNU tar
 * included, and the ratio said more about the order of the contenders than about them.
 *
 * `thinimage apply --sha256` also hashes the blob and holds it to the digest (GNU tar checks
 * nothing); plain `thinimage apply`, like pull's pass over a blob verified at download, computes
 * no digest.
 *
 * `pull` applies a blob it validated when fetching in one pass (`applyLayer` with `validated`),
 * which no command exposes: bench/apply_one_pass.ts is that contender, with the product's
 * grants.
 *
 * Usage: deno run -A bench/tar.ts [--rounds N] [--layer trees|small] [--target tmpfs|disk]
 *          [--keep] [--json] [--syscalls]
 * With --json, one JSON document (every sample of every row) replaces the Markdown on stdout.
 * With --syscalls, each extracting contender also runs once under `strace -f -c`, and a table
 * of syscalls per entry follows: where syscalls are dear (the emulated VM) they set the pace.
 * @module
 */
import { parseArgs } from "node:util";
import { LIBC_PATH as LIBC } from "../src/host/libc.ts";
import { RUNTIME_FLAGS } from "../src/cli/permissions.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    layer: { type: "string", default: "trees" },
    target: { type: "string", default: "tmpfs" },
    keep: { type: "boolean" },
    json: { type: "boolean" },
    syscalls: { type: "boolean" },
  },
});
const ROUNDS = Number(values.rounds);
const MAIN = new URL("../src/main.ts", import.meta.url).pathname;
const TREES = [
  "usr/lib/python3",
  "usr/share/doc",
  "usr/share/perl",
  "usr/share/man",
  "usr/sbin",
  "usr/include",
  "usr/share/zoneinfo",
];
const TIME = "/usr/bin/time";
const MKFS = "/usr/sbin/mkfs.ext4";
const TAR = "/usr/bin/tar";

/** Run a program under GNU time; wall seconds and peak RSS in KiB. */
async function measure(cmd: string, args: string[]): Promise<{ s: number; rssKiB: number }> {
  const start = performance.now();
  const out = await new Deno.Command(TIME, {
    args: ["-f", "%M", cmd, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  const s = (performance.now() - start) / 1000;
  const err = new TextDecoder().decode(out.stderr).trim().split("\n");
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${err.join("\n")}`);
  return { s, rssKiB: Number(err[err.length - 1]) };
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stderr: "inherit" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed`);
  return new TextDecoder().decode(out.stdout);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// A tmpfs of our own: /dev/shm is off limits to Deno without --allow-all, and a private mount
// keeps other processes' files out of the measurement.
let work: string;
let target: string;
/** With `--target disk`: the ext4 image, mounted on `work`/fs and made afresh each round. */
let ext4: { image: string; mnt: string } | undefined;
let ext4Mounted = false;
if (values.target === "disk") {
  work = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "thinimage-bench-tar-" });
  ext4 = { image: `${work}/ext4.img`, mnt: `${work}/fs` };
  target = "ext4 (journaled, fresh each round, loop device on /var/tmp)";
} else {
  work = Deno.makeTempDirSync({ prefix: "thinimage-bench-tar-" });
  target = "tmpfs";
  try {
    await run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=4g", "thinimage-bench", work]);
  } catch {
    target = `disk (${work})`;
  }
}

/** A fresh journaled ext4 on `ext4.mnt`, as `mkfsExt4` makes it on a thin volume. */
async function freshExt4(bytes: number): Promise<void> {
  const { image, mnt } = ext4!;
  if (ext4Mounted) await run("/usr/bin/umount", [mnt]);
  ext4Mounted = false;
  try {
    Deno.removeSync(image);
  } catch { /* first round */ }
  // Room for every contender's tree of one round, and then some.
  Deno.writeFileSync(image, new Uint8Array(0));
  Deno.truncateSync(image, Math.max(16 * 2 ** 30, bytes * 20));
  await run(MKFS, [
    "-q",
    "-F",
    "-E",
    "nodiscard,lazy_itable_init=0,lazy_journal_init=0,packed_meta_blocks=1",
    "-i",
    "8192",
    image,
  ]);
  Deno.mkdirSync(mnt, { recursive: true });
  await run("/usr/bin/mount", ["-o", "loop", image, mnt]);
  ext4Mounted = true;
}

/** 120,000 entries: 1,200 directories of 98 files (0-4 KiB), a symlink and a hardlink each. */
function smallTree(root: string): string[] {
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const data = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
  const dirs: string[] = [];
  for (let d = 0; d < 1200; d++) {
    const dir = `small/d${Math.floor(d / 40)}/e${d}`;
    Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
    for (let f = 0; f < 98; f++) {
      Deno.writeFileSync(`${root}/${dir}/f${f}`, data.subarray(0, Math.floor(rand() * 4096)));
    }
    Deno.symlinkSync("f0", `${root}/${dir}/link`);
    Deno.linkSync(`${root}/${dir}/f1`, `${root}/${dir}/hard`);
    dirs.push(dir);
  }
  return ["small"];
}

try {
  const layer = `${work}/layer.tar`;
  let trees: string[];
  if (values.layer === "small") {
    const src = `${work}/src`;
    Deno.mkdirSync(src);
    trees = smallTree(src);
    await run(TAR, ["-cf", layer, "--numeric-owner", "-C", src, ...trees]);
    Deno.removeSync(src, { recursive: true });
  } else {
    trees = TREES.filter((t) => {
      try {
        return Deno.statSync(`/${t}`).isDirectory;
      } catch {
        return false;
      }
    });
    await run(TAR, ["-cf", layer, "--numeric-owner", "-C", "/", ...trees]);
  }
  const bytes = Deno.statSync(layer).size;
  const sha = (await run("/usr/bin/sha256sum", [layer])).split(" ")[0];
  const names = (await run(TAR, ["-tf", layer])).trim().split("\n");
  const entries = names.length;
  const whiteouts = names.filter((n) => /(^|\/)\.wh\./.test(n)).length;
  const deno = Deno.execPath();
  // The product's runtime flags (src/cli/permissions.ts), as its tasks and launchers run it.
  const ro = ["run", ...RUNTIME_FLAGS, "--allow-read", "--allow-env", MAIN];
  // The product's grants for apply: read, env and libc; no write grant (writes go through libc).
  const rw = ["run", ...RUNTIME_FLAGS, "--allow-read", "--allow-env", `--allow-ffi=${LIBC}`, MAIN];
  const onePass = [
    "run",
    ...RUNTIME_FLAGS,
    "--allow-read",
    `--allow-ffi=${LIBC}`,
    new URL("./apply_one_pass.ts", import.meta.url).pathname,
  ];

  const rows: Record<string, { s: number[]; rss: number[] }> = {};
  const add = (name: string, m: { s: number; rssKiB: number }) => {
    (rows[name] ??= { s: [], rss: [] }).s.push(m.s);
    rows[name].rss.push(m.rssKiB);
  };
  // On tmpfs a contender's tree is removed before its next run; on ext4 nothing is removed
  // during a round (see the module doc): each run gets a directory of its own.
  let runs = 0;
  const fresh = (name: string) => {
    if (ext4) {
      const d = `${ext4.mnt}/${name}-${runs++}`;
      Deno.mkdirSync(d);
      return d;
    }
    const d = `${work}/${name}`;
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* first round */ }
    Deno.mkdirSync(d);
    return d;
  };
  for (let r = 0; r < ROUNDS; r++) {
    console.error(`round ${r + 1}/${ROUNDS}`);
    if (ext4) {
      await freshExt4(bytes);
      await run("/usr/bin/sync", []);
    }
    // Each contender once a round; odd rounds run them in reverse, so that none always
    // follows the same neighbour (page cache, CPU frequency, other tenants).
    const steps: (() => Promise<void>)[] = [
      async () => add("sha256sum", await measure("/usr/bin/sha256sum", [layer])),
      async () => add("thinimage validate", await measure(deno, [...ro, "validate", layer])),
      async () =>
        add(
          "GNU tar -x",
          await measure(TAR, [
            "-x",
            "--numeric-owner",
            "--same-permissions",
            "--same-owner",
            "-f",
            layer,
            "-C",
            fresh("gnu"),
          ]),
        ),
      async () =>
        add(
          "thinimage apply --sha256",
          await measure(deno, [...rw, "apply", layer, fresh("ours"), "--sha256", sha]),
        ),
      async () =>
        add(
          "one pass (pull's apply)",
          await measure(deno, [...onePass, layer, fresh("one"), sha, String(whiteouts)]),
        ),
      async () =>
        add(
          "thinimage apply",
          await measure(deno, [...rw, "apply", layer, fresh("ours")]),
        ),
    ];
    if (r % 2) steps.reverse();
    for (const step of steps) {
      // What the contender before wrote back is not this one's to wait for: the last of a
      // round otherwise ran beside the writeback of three trees, and lost by 40-60%.
      if (ext4) await run("/usr/bin/sync", []);
      await step();
    }
    if (!ext4) {
      fresh("gnu");
      fresh("ours");
      fresh("one");
    }
  }
  if (ext4 && values.syscalls) await freshExt4(bytes);
  /** Syscall name -> calls in one run of each contender (strace -c's table). */
  const syscalls: Record<string, Record<string, number>> = {};
  if (values.syscalls) {
    const traced = async (name: string, cmd: string, args: string[]) => {
      const out = `${work}/strace-${Object.keys(syscalls).length}.txt`;
      await run("/usr/bin/strace", ["-f", "-c", "-o", out, cmd, ...args]);
      const counts: Record<string, number> = {};
      for (const line of Deno.readTextFileSync(out).split("\n")) {
        const f = line.trim().split(/\s+/);
        // "% time  seconds  usecs/call  calls  [errors]  syscall"
        if (f.length >= 5 && /^\d/.test(f[0]) && f[f.length - 1] !== "total") {
          counts[f[f.length - 1]] = Number(f[3]);
        }
      }
      syscalls[name] = counts;
    };
    const gnuArgs = ["-x", "--numeric-owner", "--same-permissions", "--same-owner", "-f", layer];
    await traced("GNU tar -x", TAR, [...gnuArgs, "-C", fresh("gnu")]);
    await traced("thinimage apply --sha256", deno, [
      ...rw,
      "apply",
      layer,
      fresh("ours"),
      "--sha256",
      sha,
    ]);
    await traced("one pass (pull's apply)", deno, [
      ...onePass,
      layer,
      fresh("one"),
      sha,
      String(whiteouts),
    ]);
  }
  const mb = bytes / 1e6;
  if (values.json) {
    console.log(JSON.stringify({
      layerBytes: bytes,
      entries,
      layer: values.layer,
      trees: trees.map((t) => "/" + t),
      target,
      rounds: ROUNDS,
      cpus: navigator.hardwareConcurrency,
      rows: Object.fromEntries(
        Object.entries(rows).map(([k, v]) => [k, { s: v.s, rssKiB: v.rss }]),
      ),
      ...(values.syscalls ? { syscalls } : {}),
    }));
  } else {
    const fmt = (name: string, floor?: string) => {
      const t = median(rows[name].s);
      const ratio = floor ? `${(median(rows[floor].s) / t).toFixed(2)}x` : "";
      return `| ${name} | ${t.toFixed(3)} | ${(mb / t).toFixed(0)} | ${ratio} | ${
        (Math.max(...rows[name].rss) / 1024).toFixed(0)
      } |`;
    };
    console.log(
      `\nLayer: ${mb.toFixed(0)} MB, ${entries} entries (tar of ${
        values.layer === "small" ? "generated small files" : trees.map((t) => "/" + t).join(", ")
      }); target: ${target}; ${ROUNDS} alternating rounds, medians; ${navigator.hardwareConcurrency} CPUs.\n`,
    );
    console.log("| command | median s | MB/s | speed vs floor | peak RSS MiB |");
    console.log("|---|---|---|---|---|");
    console.log(fmt("sha256sum"));
    console.log(fmt("thinimage validate", "sha256sum"));
    console.log(fmt("GNU tar -x"));
    console.log(fmt("thinimage apply --sha256", "GNU tar -x"));
    console.log(fmt("thinimage apply", "GNU tar -x"));
    console.log(fmt("one pass (pull's apply)", "GNU tar -x"));
    if (values.syscalls) {
      // Thread bookkeeping and memory management say nothing about the work per entry.
      const noise =
        /^(futex|mmap|munmap|mprotect|madvise|brk|rt_sig.*|sigaltstack|clone3?|gettid|getpid|sched_.*|prctl|set_robust_list|rseq|epoll_.*|ioctl)$/;
      const names = Object.keys(syscalls);
      const total = (c: Record<string, number>) =>
        Object.entries(c).reduce((n, [k, v]) => noise.test(k) ? n : n + v, 0);
      const top = Object.entries(syscalls[names[names.length - 1]])
        .filter(([k]) => !noise.test(k)).sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k]) => k);
      console.log(`\nSyscalls per entry (one run each, strace -f -c; ${entries} entries):\n`);
      console.log(`| command | all | ${top.join(" | ")} |`);
      console.log(`|---|---|${top.map(() => "---|").join("")}`);
      for (const n of names) {
        const per = (v: number) => (v / entries).toFixed(2);
        const c = syscalls[n];
        console.log(`| ${n} | ${per(total(c))} | ${top.map((k) => per(c[k] ?? 0)).join(" | ")} |`);
      }
    }
  }
} finally {
  if (!values.keep) {
    if (target === "tmpfs") await run("/usr/bin/umount", [work]).catch(() => {});
    if (ext4Mounted) await run("/usr/bin/umount", [ext4!.mnt]).catch(() => {});
    Deno.removeSync(work, { recursive: true });
  }
}
