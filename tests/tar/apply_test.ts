// Applying layers: metadata, OCI semantics, nothing written on refusal, and real escape attempts
// with canaries outside the target directory.
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { LIBC_PATH } from "../../src/host/libc.ts";
import { gzipSync } from "node:zlib";
import { Tar } from "./tar_builder.ts";
import { snapshotTree } from "./tree.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";
import { InvalidInputError } from "../../src/errors.ts";

/** A sandbox: `root` is the target, `canary` sits beside it with a file that must stay intact. */
function sandbox() {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-apply-test-" });
  const root = `${base}/root`;
  const canary = `${base}/canary`;
  Deno.mkdirSync(root);
  Deno.mkdirSync(`${canary}/dir`, { recursive: true });
  Deno.writeTextFileSync(`${canary}/secret`, "do not touch");
  Deno.chmodSync(`${canary}/secret`, 0o600);
  const before = snapshotTree(base + "/canary", { mtimes: "exact", withRoot: true, inodes: true });
  let n = 0;
  return {
    base,
    root,
    canary,
    layer: (t: Tar) => t.write(base, `${n++}.tar`),
    canaryIntact() {
      assertEquals(snapshotTree(canary, { mtimes: "exact", withRoot: true, inodes: true }), before);
    },
    cleanup: () => Deno.removeSync(base, { recursive: true }),
  };
}

Deno.test("modes (setuid, setgid, sticky), owners and mtimes are set as entries say", async () => {
  const s = sandbox();
  const layer = s.layer(
    new Tar()
      .dir("./", { mode: 0o751, uid: 7, gid: 8, mtime: 1000 })
      .dir("bin", { mode: 0o755, mtime: 2000 })
      .file("bin/su", "x", { mode: 0o4755, uid: 0, gid: 0, mtime: 3000 })
      .file("bin/wall", "y", { mode: 0o2755, uid: 0, gid: 5, mtime: 4000 })
      .dir("tmp", { mode: 0o1777, mtime: 5000 })
      .file("home/u/f", "z", { mode: 0o640, uid: 1000, gid: 1001, mtime: 6000 })
      .symlink("link", "/bin/su", { uid: 12, gid: 13, mtime: 7000 })
      .hardlink("bin/su2", "bin/su")
      .pax([["mtime", "8000.5"], ["uid", "3000000000"]])
      .file("paxfile", "p")
      .end(),
  );
  const r = await applyLayer(layer, s.root);
  assertEquals([r.files, r.directories, r.symlinks, r.hardlinks], [4, 3, 1, 1]);
  const st = (p: string) => Deno.lstatSync(`${s.root}/${p}`);
  assertEquals([st(".").mode! & 0o7777, st(".").uid, st(".").gid, st(".").mtime?.getTime()], [
    0o751,
    7,
    8,
    1000_000,
  ]);
  assertEquals([st("bin/su").mode! & 0o7777, st("bin/su").mtime?.getTime()], [0o4755, 3000_000]);
  assertEquals([st("bin/wall").mode! & 0o7777, st("bin/wall").gid], [0o2755, 5]);
  assertEquals([st("tmp").mode! & 0o7777, st("tmp").mtime?.getTime()], [0o1777, 5000_000]);
  assertEquals([st("home/u/f").mode! & 0o7777, st("home/u/f").uid, st("home/u/f").gid], [
    0o640,
    1000,
    1001,
  ]);
  assertEquals(
    [st("link").isSymlink, st("link").uid, st("link").gid, st("link").mtime?.getTime()],
    [true, 12, 13, 7000_000],
  );
  assertEquals(Deno.readLinkSync(`${s.root}/link`), "/bin/su");
  assertEquals(st("bin/su2").ino, st("bin/su").ino);
  assertEquals([st("paxfile").mtime?.getTime(), st("paxfile").uid], [8000_500, 3000000000]);
  assertEquals(st("bin").mtime?.getTime(), 2000_000, "directory mtime is set after its children");
  s.cleanup();
});

Deno.test("a later entry replaces an earlier one; a directory over a directory merges", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/merge`);
  Deno.writeTextFileSync(`${s.root}/merge/lower`, "lower");
  Deno.mkdirSync(`${s.root}/dir2file/deep`, { recursive: true });
  Deno.writeTextFileSync(`${s.root}/file2dir`, "f");
  Deno.writeTextFileSync(`${s.root}/file2link`, "f");
  const layer = s.layer(
    new Tar()
      .dir("merge", { mode: 0o700, uid: 5 })
      .file("merge/upper", "u")
      .file("dir2file", "now a file")
      .dir("file2dir", { mode: 0o711 })
      .symlink("file2link", "merge")
      .file("twice", "first")
      .file("twice", "second")
      .dir("merge", { mode: 0o750, uid: 6 })
      .end(),
  );
  await applyLayer(layer, s.root);
  assertEquals(Deno.readTextFileSync(`${s.root}/merge/lower`), "lower");
  assertEquals(Deno.readTextFileSync(`${s.root}/merge/upper`), "u");
  const m = Deno.statSync(`${s.root}/merge`);
  assertEquals([m.mode! & 0o7777, m.uid], [0o750, 6]);
  assertEquals(Deno.readTextFileSync(`${s.root}/dir2file`), "now a file");
  assert(Deno.lstatSync(`${s.root}/file2dir`).isDirectory);
  assertEquals(Deno.readLinkSync(`${s.root}/file2link`), "merge");
  assertEquals(Deno.readTextFileSync(`${s.root}/twice`), "second");
  s.cleanup();
});

Deno.test("whiteouts remove lower content and are never created themselves", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/etc/sub`, { recursive: true });
  Deno.writeTextFileSync(`${s.root}/etc/gone`, "x");
  Deno.writeTextFileSync(`${s.root}/etc/kept`, "x");
  Deno.writeTextFileSync(`${s.root}/etc/sub/deep`, "x");
  const layer = s.layer(
    new Tar()
      .file("etc/.wh.gone")
      .file("etc/.wh.sub")
      .file("etc/.wh.never-existed")
      .file("missing-dir/.wh.x")
      .file("etc/mine", "new")
      .file("etc/.wh.mine") // same layer: the layer's own entry stays
      .end(),
  );
  const r = await applyLayer(layer, s.root);
  assertEquals(r.whiteouts, 5);
  assertEquals(snapshotTree(s.root).map((l) => l.split(" ")[0]), ["etc", "etc/kept", "etc/mine"]);
  s.cleanup();
});

Deno.test("an opaque directory drops lower content but keeps this layer's entries", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/d/sub`, { recursive: true });
  Deno.mkdirSync(`${s.root}/d/mixed`, { recursive: true });
  Deno.writeTextFileSync(`${s.root}/d/old`, "x");
  Deno.writeTextFileSync(`${s.root}/d/sub/z`, "x");
  Deno.writeTextFileSync(`${s.root}/d/mixed/lower`, "x");
  Deno.writeTextFileSync(`${s.root}/other`, "x");
  const layer = s.layer(
    new Tar()
      .file("d/before", "b")
      .file("d/mixed/upper", "u")
      .file("d/.wh..wh..opq")
      .file("d/after", "a")
      .end(),
  );
  await applyLayer(layer, s.root);
  assertEquals(snapshotTree(s.root).map((l) => l.split(" ")[0]), [
    "d",
    "d/after",
    "d/before",
    "d/mixed",
    "d/mixed/upper",
    "other",
  ]);
  s.cleanup();
});

Deno.test("hardlinks may point at lower-layer files, never at missing ones", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/usr/bin`, { recursive: true });
  Deno.writeTextFileSync(`${s.root}/usr/bin/perl`, "perl");
  await applyLayer(s.layer(new Tar().hardlink("usr/bin/perl5", "usr/bin/perl").end()), s.root);
  assertEquals(
    Deno.lstatSync(`${s.root}/usr/bin/perl5`).ino,
    Deno.lstatSync(`${s.root}/usr/bin/perl`).ino,
  );
  const err = await assertRejects(
    () =>
      applyLayer(s.layer(new Tar().file("new", "n").hardlink("h", "usr/bin/nope").end()), s.root),
    LayerRejectedError,
  );
  assertEquals(err.violations[0].rule, "hardlink-unknown-target");
  assertEquals(Deno.readDirSync(s.root).toArray().map((e) => e.name), ["usr"], "nothing written");
  s.cleanup();
});

Deno.test("a refused layer writes nothing at all", async () => {
  const s = sandbox();
  Deno.writeTextFileSync(`${s.root}/existing`, "x");
  const before = snapshotTree(s.root, { mtimes: "exact", withRoot: true });
  const layer = s.layer(
    new Tar().dir("a").file("a/b", "content").file(".wh.existing").file("z/../../escape").end(),
  );
  const err = await assertRejects(() => applyLayer(layer, s.root), LayerRejectedError);
  assertEquals(err.exitCode, 65);
  assertEquals(snapshotTree(s.root, { mtimes: "exact", withRoot: true }), before);
  s.cleanup();
});

/** The root's owner, mode and mtime (ns), what an undone apply must give back. */
function rootState(root: string): string {
  const st = Deno.statSync(root);
  return `${st.uid}:${st.gid} ${(st.mode! & 0o7777).toString(8)} ${st.mtime!.getTime()}`;
}

Deno.test("onto an empty directory: a refusal after writing leaves it empty and as it was", async () => {
  const s = sandbox();
  Deno.chmodSync(s.root, 0o751);
  Deno.utimeSync(s.root, 1_600_000_000.123, 1_600_000_000.123);
  const before = rootState(s.root);
  const big = "x".repeat(20_000);
  const cases: [string, Tar, string][] = [
    // A rule broken late: the entries before it are written (one pass), then removed.
    [
      "rule",
      new Tar().dir("./", { mode: 0o700, uid: 7 }).dir("a").file("a/b", big).dir("a/c")
        .symlink("l", "a").file("l/through", "x").file("z/../../escape").end(),
      "name-dotdot",
    ],
    // The kernel refuses a loop the rules cannot see.
    [
      "kernel",
      new Tar().file("f", big).symlink("l1", "l2").symlink("l2", "l1").file("l1/x").end(),
      "symlink-loop",
    ],
  ];
  for (const [what, tar, rule] of cases) {
    const err = await assertRejects(() => applyLayer(s.layer(tar), s.root), Error);
    const rules = err instanceof LayerRejectedError ? err.violations.map((v) => v.rule) : [];
    assert(
      err instanceof LayerRejectedError || err instanceof InvalidInputError,
      `${what}: ${err}`,
    );
    if (err instanceof LayerRejectedError) assertEquals(rules, [rule], what);
    assertEquals(Deno.readDirSync(s.root).toArray(), [], `${what}: nothing left`);
    assertEquals(rootState(s.root), before, `${what}: the root's owner, mode and mtime`);
  }
  // A digest that does not match is known only at the end, after every entry was written.
  const whole = s.layer(new Tar().dir("d").file("d/f", big).hardlink("h", "d/f").end());
  const err = await assertRejects(
    () => applyLayer(whole, s.root, { expectedSha256: "0".repeat(64) }),
    LayerRejectedError,
  );
  assertEquals(err.violations[0].rule, "sha256-mismatch");
  assert(!/partial/.test(err.violations[0].message), "nothing to discard: it was removed");
  assertEquals(Deno.readDirSync(s.root).toArray(), [], "nothing left after a digest mismatch");
  assertEquals(rootState(s.root), before);
  // Over something kept, the partial layer stays, and the message says so.
  Deno.writeTextFileSync(`${s.root}/lower`, "");
  const kept = await assertRejects(
    () => applyLayer(whole, s.root, { expectedSha256: "0".repeat(64) }),
    LayerRejectedError,
  );
  assert(/partial layer: discard it/.test(kept.violations[0].message), kept.message);
  s.canaryIntact();
  s.cleanup();
});

Deno.test("onto an empty directory: a blob that could outgrow the room is refused before writing", async () => {
  const s = sandbox();
  // Deno reports change times in whole seconds: stat(1) has them to the nanosecond.
  const ctime = () =>
    new TextDecoder().decode(
      new Deno.Command("/usr/bin/stat", { args: ["-c", "%z", s.root] }).outputSync().stdout,
    );
  const before = ctime();
  // File times come from the kernel's coarse clock: let it tick past `before`.
  await new Promise((r) => setTimeout(r, 30));
  const big = new Tar().file("a", "a").file("zeros", new Uint8Array(2 << 20)).end();
  const plain = s.layer(big);
  const gz = `${s.base}/big.tar.gz`;
  Deno.writeFileSync(gz, gzipSync(big.bytes()));
  // Both declare more than the limit; the plain one is also larger than it, the gzip one is not.
  for (const layer of [plain, gz]) {
    const err = await assertRejects(
      () => applyLayer(layer, s.root, { limits: { unpackedBytes: 1 << 20 } }),
      LayerRejectedError,
    );
    assertEquals(err.violations.map((v) => v.rule), ["limit-unpacked-bytes"], layer);
    // Written and removed again would have moved the root's change time.
    assertEquals(ctime(), before, `${layer}: nothing was written`);
  }
  // A gzip blob the kernel refuses half-way (validation cannot see a link loop) is undone too.
  const loop = new Tar().file("f", "x").symlink("l1", "l2").symlink("l2", "l1").file("l1/x").end();
  Deno.writeFileSync(gz, gzipSync(loop.bytes()));
  await assertRejects(() => applyLayer(gz, s.root), InvalidInputError);
  assertEquals(Deno.readDirSync(s.root).toArray(), []);
  s.cleanup();
});

Deno.test("onto an empty directory: whiteouts and opaque markers keep the layer's own entries", async () => {
  const s = sandbox();
  const layer = s.layer(
    new Tar().file("etc/mine", "m").file("etc/.wh.mine").dir("d").file("d/x", "x")
      .file("d/.wh..wh..opq").file(".wh.etc").end(),
  );
  const r = await applyLayer(layer, s.root);
  assertEquals(r.whiteouts, 3);
  assertEquals(snapshotTree(s.root).map((l) => l.split(" ")[0]), ["d", "d/x", "etc", "etc/mine"]);
  s.cleanup();
});

Deno.test("expectedSha256: a blob that does not match is refused", async () => {
  const s = sandbox();
  const layer = s.layer(new Tar().file("a", "x").end());
  const err = await assertRejects(
    () => applyLayer(layer, s.root, { expectedSha256: "0".repeat(64) }),
    LayerRejectedError,
  );
  assertEquals(err.violations[0].rule, "sha256-mismatch");
  const { createHash } = await import("node:crypto");
  const sha = createHash("sha256").update(Deno.readFileSync(layer)).digest("hex");
  const ok = await applyLayer(layer, s.root, { expectedSha256: sha.toUpperCase() });
  assertEquals(ok.sha256, sha);
  s.cleanup();
});

Deno.test("a blob changed while it is applied is refused, hashed or not", async () => {
  const s = sandbox();
  // Past WORKER_MIN_BYTES, so the file writer's thread copies from its own descriptor too.
  const layer = s.layer(
    new Tar().file("a", "first").file("big", new Uint8Array(17 << 20).fill(1)).file("z", "z").end(),
  );
  for (const onto of ["empty", "full"] as const) {
    for (const digest of [false, true]) {
      const dir = Deno.makeTempDirSync({ dir: s.base });
      if (onto === "full") Deno.writeTextFileSync(`${dir}/keep`, "k");
      let changed = false;
      const err = await assertRejects(
        () =>
          applyLayer(layer, dir, {
            digest,
            // Called once the first file is written: the blob's last byte changes in place.
            checkpointBytes: 0,
            checkpoint: async () => {
              if (!changed) {
                changed = true;
                await new Promise((r) => setTimeout(r, 20)); // a change time of its own
                using f = Deno.openSync(layer, { write: true });
                f.seekSync(-1, Deno.SeekMode.End);
                f.writeSync(new Uint8Array([0]));
              }
              return 1 << 30;
            },
          }),
        LayerRejectedError,
      );
      assertEquals(err.violations[0].rule, "blob-changed", `${onto}, digest ${digest}`);
      // Onto an empty directory what was written is removed; onto another, it is the caller's.
      if (onto === "empty") assertEquals([...Deno.readDirSync(dir)], []);
    }
  }
  s.cleanup();
});

Deno.test("digest: computed only when expected or asked for, by a thread or this one", async () => {
  const s = sandbox();
  // Small (hashed on this thread) and past WORKER_MIN_BYTES (hashed by the worker).
  for (const size of [10, 17 << 20]) {
    const layer = s.layer(new Tar().file("f", new Uint8Array(size).fill(3)).end());
    const sha = await sha256Of(layer);
    for (const [opts, want] of [[{}, undefined], [{ digest: true }, sha]] as const) {
      const dir = Deno.makeTempDirSync({ dir: s.base });
      const r = await applyLayer(layer, dir, opts);
      assertEquals(r.sha256, want, `${size} B, ${JSON.stringify(opts)}`);
      assertEquals(Deno.statSync(`${dir}/f`).size, size);
    }
  }
  s.cleanup();
});

Deno.test("escape: symlink chains and climbing or absolute targets stay inside the root", async () => {
  const s = sandbox();
  const layer = s.layer(
    new Tar()
      .symlink("a", "b")
      .symlink("b", "../../..")
      .file("a/canary/secret", "pwned") // a -> b -> ../../.. clamps to the root
      .symlink("abs", s.canary)
      .file("abs/secret", "pwned")
      .file("abs/dir/new", "pwned")
      .symlink("rel", "../canary")
      .file("rel/secret", "pwned")
      .dir("rel/dir", { mode: 0o777 })
      .end(),
  );
  await applyLayer(layer, s.root);
  s.canaryIntact();
  assertEquals(Deno.readTextFileSync(`${s.root}/canary/secret`), "pwned");
  assertEquals(Deno.readTextFileSync(`${s.root}${s.canary}/dir/new`), "pwned");
  s.cleanup();
});

Deno.test("escape: a directory replaced by a symlink, then written through", async () => {
  const s = sandbox();
  const layer = s.layer(
    new Tar()
      .dir("d")
      .file("d/x", "inside")
      .symlink("d", s.canary)
      .file("d/secret", "pwned")
      .dir("d/dir", { mode: 0o777, uid: 99 })
      .hardlink("d/linked", "d/secret")
      .end(),
  );
  await applyLayer(layer, s.root);
  s.canaryIntact();
  assertEquals(Deno.readTextFileSync(`${s.root}${s.canary}/secret`), "pwned");
  s.cleanup();
});

Deno.test("escape: existing symlinks at the final component are replaced, never followed", async () => {
  const s = sandbox();
  Deno.symlinkSync(`${s.canary}/secret`, `${s.root}/file`);
  Deno.symlinkSync(`${s.canary}/dir`, `${s.root}/dir`);
  Deno.symlinkSync(`${s.canary}/secret`, `${s.root}/hl`);
  const layer = s.layer(
    new Tar()
      .file("file", "pwned", { mode: 0o777 })
      .dir("dir", { mode: 0o777, uid: 1234 })
      .hardlink("hl2", "hl") // a hardlink to the symlink itself, not to what it points at
      .symlink("hl", "elsewhere")
      .end(),
  );
  await applyLayer(layer, s.root);
  s.canaryIntact();
  assert(Deno.lstatSync(`${s.root}/file`).isFile);
  assert(Deno.lstatSync(`${s.root}/hl2`).isSymlink);
  assertEquals(Deno.readLinkSync(`${s.root}/hl2`), `${s.canary}/secret`);
  s.cleanup();
});

Deno.test("escape: hardlinks to outside through a symlinked parent are refused", async () => {
  const s = sandbox();
  Deno.symlinkSync(s.canary, `${s.root}/out`);
  Deno.symlinkSync("../../canary", `${s.root}/up`);
  for (const target of ["out/secret", "up/secret"]) {
    const err = await assertRejects(
      () => applyLayer(s.layer(new Tar().hardlink("h", target).end()), s.root),
      LayerRejectedError,
    );
    assertEquals(err.violations[0].rule, "hardlink-unknown-target");
  }
  s.canaryIntact();
  s.cleanup();
});

Deno.test("escape: whiteouts and opaque markers through a symlinked parent stay inside", async () => {
  const s = sandbox();
  Deno.symlinkSync(s.canary, `${s.root}/abs`);
  Deno.symlinkSync("../canary", `${s.root}/rel`);
  Deno.mkdirSync(`${s.root}/canary`);
  Deno.writeTextFileSync(`${s.root}/canary/secret`, "inside");
  const layer = s.layer(
    new Tar()
      .file("abs/.wh.secret")
      .file("abs/.wh.dir")
      .file("abs/.wh..wh..opq")
      .file("rel/.wh.dir")
      .file("rel/.wh.secret")
      .end(),
  );
  await applyLayer(layer, s.root);
  s.canaryIntact();
  assert(
    !Deno.readDirSync(`${s.root}/canary`).toArray().length,
    "the clamped path inside was whited out",
  );
  s.cleanup();
});

Deno.test("a symlink loop in a parent path is refused (exit 65), nothing outside touched", async () => {
  const s = sandbox();
  const layer = s.layer(new Tar().symlink("l1", "l2").symlink("l2", "l1").file("l1/x", "x").end());
  const err = await assertRejects(() => applyLayer(layer, s.root), InvalidInputError);
  assertEquals(err.exitCode, 65);
  s.canaryIntact();
  s.cleanup();
});

Deno.test("a file in place of a directory the path needs is refused", async () => {
  const s = sandbox();
  Deno.writeTextFileSync(`${s.root}/notdir`, "x");
  await assertRejects(
    () => applyLayer(s.layer(new Tar().file("notdir/x", "x").end()), s.root),
    InvalidInputError,
  );
  s.cleanup();
});

/** Hex SHA-256 of a file, as the blob store records it when fetching. */
async function sha256Of(file: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(Deno.readFileSync(file)).digest("hex");
}

Deno.test("validated (one pass): the same tree and summary as validate-then-apply", async () => {
  const s = sandbox();
  for (const d of [s.root, `${s.base}/one`]) {
    Deno.mkdirSync(`${d}/lower/old`, { recursive: true });
    Deno.utimeSync(`${d}/lower`, 500, 500);
  }
  const layer = s.layer(
    new Tar()
      .dir("./", { mode: 0o751, mtime: 1000 })
      .dir("bin", { mode: 0o755, mtime: 2000 })
      .file("bin/su", "x", { mode: 0o4755, mtime: 3000 })
      .file("bin/ro", "r", { mode: 0o444, uid: 3, gid: 4, mtime: 3500 })
      .dir("home", { mtime: 4000 })
      .dir("home/u", { mode: 0o700, mtime: 5000 })
      .file("home/u/f", "z", { mode: 0o640, uid: 1000, gid: 1001, mtime: 6000 })
      .symlink("link", "/bin/su", { uid: 12, gid: 13, mtime: 7000 })
      .hardlink("bin/su2", "bin/su")
      .file("lower/.wh..wh..opq")
      .dir("lower", { mtime: 8000 })
      .file("twice", "first")
      .file("twice", "second")
      .end(),
  );
  const two = await applyLayer(layer, s.root, { digest: true });
  const one = await applyLayer(layer, `${s.base}/one`, {
    validated: true,
    expectedSha256: two.sha256,
  });
  assertEquals(one, two);
  const tree = (d: string) => snapshotTree(d, { mtimes: true, withRoot: true });
  assertEquals(tree(`${s.base}/one`), tree(s.root));
  s.cleanup();
});

Deno.test("validated (one pass): needs the digest the blob was validated with", async () => {
  const s = sandbox();
  const layer = s.layer(new Tar().file("a", "x").end());
  await assertRejects(() => applyLayer(layer, s.root, { validated: true }), TypeError);
  assertEquals([...Deno.readDirSync(s.root)].length, 0);
  s.cleanup();
});

Deno.test("validated (one pass): hostile entries are still refused and nothing lands outside", async () => {
  // Each layer starts benign (so the single pass has written something when it meets the
  // hostile entry) and is refused by the rule named, with the canary beside the root intact.
  const hostile: [string, (t: Tar) => Tar, string][] = [
    ["dotdot", (t) => t.file("z/../../escape", "pwned"), "name-dotdot"],
    ["absolute", (t) => t.file("/abs-escape", "pwned"), "name-absolute"],
    ["device", (t) => t.header({ name: "dev/sda", typeflag: "4" }), "device"],
    ["fifo", (t) => t.header({ name: "fifo", typeflag: "6" }), "fifo"],
    ["hardlink out", (t) => t.hardlink("h", "../canary/secret"), "hardlink-outside"],
    ["hardlink abs", (t) => t.hardlink("h", "/etc/passwd"), "hardlink-outside"],
    ["hardlink unseen", (t) => t.hardlink("h", "nowhere"), "hardlink-unknown-target"],
    ["whiteout dotdot", (t) => t.file("a/.wh...", ""), "whiteout-dot"],
    ["unknown type", (t) => t.header({ name: "x", typeflag: "Z" }), "unknown-type"],
    ["checksum", (t) => t.header({ name: "bad", checksumDelta: 1 }), "header-checksum"],
    ["sparse", (t) => t.header({ name: "sp", typeflag: "S" }), "sparse"],
  ];
  for (const [what, add, rule] of hostile) {
    const s = sandbox();
    const benign = new Tar().dir("a").file("a/b", "content").symlink("up", "../../..");
    const blob = s.layer(add(benign).file("after", "after").end());
    const err = await assertRejects(
      () => applyLayer(blob, s.root, { validated: true, expectedSha256: "0".repeat(64) }),
      LayerRejectedError,
    );
    assertEquals([err.exitCode, err.violations[0].rule], [65, rule], what);
    assert(Deno.lstatSync(`${s.root}/a/b`).isFile, `${what}: one pass wrote before refusing`);
    assertEquals(
      [...Deno.readDirSync(s.base)].map((e) => e.name).sort(),
      ["0.tar", "canary", "root"],
      what,
    );
    s.canaryIntact();
    s.cleanup();
  }
});

Deno.test("validated (one pass): a truncated blob is refused", async () => {
  const s = sandbox();
  const full = new Tar().file("a", "x".repeat(4000)).file("b", "y").end().bytes();
  const file = `${s.base}/cut.tar`;
  Deno.writeFileSync(file, full.subarray(0, 2048));
  const digest = await sha256Of(file);
  const err = await assertRejects(
    () => applyLayer(file, s.root, { validated: true, expectedSha256: digest }),
    LayerRejectedError,
  );
  assertEquals(err.violations[0].rule, "truncated");
  s.canaryIntact();
  s.cleanup();
});

Deno.test("validated (one pass): a blob swapped after validation is refused by its digest", async () => {
  const s = sandbox();
  const validated = s.layer(new Tar().file("a", "good").end());
  const digest = await sha256Of(validated);
  // Same entries and sizes, other bytes: every rule passes, only the digest tells.
  Deno.writeFileSync(validated, new Tar().file("a", "evil").end().bytes());
  const err = await assertRejects(
    () => applyLayer(validated, s.root, { validated: true, expectedSha256: digest }),
    LayerRejectedError,
  );
  assertEquals([err.exitCode, err.violations[0].rule], [65, "sha256-mismatch"]);
  s.canaryIntact();
  s.cleanup();
});

/** Names at the top of `root` left by files written in place (there must be none). */
function staged(root: string): string[] {
  return [...Deno.readDirSync(root)].map((e) => e.name).filter((n) => n.startsWith(".thinimage-"));
}

Deno.test("files are staged at the root and moved into place: none is left behind", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/was-dir/sub`, { recursive: true });
  Deno.symlinkSync(`${s.canary}/secret`, `${s.root}/was-link`);
  const ok = s.layer(
    new Tar()
      .file("was-dir", "a file now", { mode: 0o640, uid: 4, gid: 5, mtime: 1234 })
      .file("was-link", "replaced, not followed")
      .file("deep/er/file", "x".repeat(70_000), { mode: 0o4711 })
      .end(),
  );
  await applyLayer(ok, s.root);
  assertEquals(staged(s.root), []);
  const st = Deno.lstatSync(`${s.root}/was-dir`);
  assertEquals([st.isFile, st.mode! & 0o7777, st.uid, st.gid, st.mtime?.getTime()], [
    true,
    0o640,
    4,
    5,
    1234_000,
  ]);
  assertEquals(Deno.lstatSync(`${s.root}/deep/er/file`).mode! & 0o7777, 0o4711);
  s.canaryIntact();
  // A blob that ends inside a file's data: the half-written file goes too.
  const bytes = new Tar().file("a", "y".repeat(4000)).file("b", "z".repeat(9000)).end().bytes();
  const cut = `${s.base}/cut.tar`;
  Deno.writeFileSync(cut, bytes.subarray(0, 4096 + 1024));
  await assertRejects(
    () => applyLayer(cut, s.root, { validated: true, expectedSha256: "0".repeat(64) }),
    LayerRejectedError,
  );
  assertEquals(staged(s.root), []);
  s.cleanup();
});

Deno.test({
  name: "a file under a mount point inside the target is copied across, with its metadata",
  ignore: Deno.uid() !== 0,
  async fn() {
    const s = sandbox();
    Deno.mkdirSync(`${s.root}/other-fs`);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "thinimage-test", `${s.root}/other-fs`],
      stderr: "null",
    }).output();
    if (!mount.success) return s.cleanup(); // no mounting here (a container without the capability)
    try {
      Deno.writeTextFileSync(`${s.root}/other-fs/old`, "old");
      const layer = s.layer(
        new Tar()
          .file("other-fs/new", "across", { mode: 0o4750, uid: 7, gid: 8, mtime: 4321 })
          .file("other-fs/old", "replaced", { mode: 0o600 })
          .end(),
      );
      await applyLayer(layer, s.root);
      const st = Deno.lstatSync(`${s.root}/other-fs/new`);
      assertEquals([st.mode! & 0o7777, st.uid, st.gid, st.mtime?.getTime()], [
        0o4750,
        7,
        8,
        4321_000,
      ]);
      assertEquals(Deno.readTextFileSync(`${s.root}/other-fs/new`), "across");
      assertEquals(Deno.readTextFileSync(`${s.root}/other-fs/old`), "replaced");
      assertEquals(staged(s.root), []);
    } finally {
      await new Deno.Command("umount", { args: [`${s.root}/other-fs`] }).output();
    }
    s.canaryIntact();
    s.cleanup();
  },
});

Deno.test("owners are as entries say when the root's group and setgid bit change what new files get", async () => {
  const s = sandbox();
  Deno.chownSync(s.root, 0, 4242);
  Deno.chmodSync(s.root, 0o2775); // files made in the root now start with group 4242
  const layer = s.layer(
    new Tar()
      .file("a", "a", { uid: 0, gid: 0 })
      .file("b", "b", { uid: 0, gid: 4242 })
      .dir("./", { mode: 0o2755, uid: 0, gid: 77 }) // and from here on with group 77
      .file("c", "c", { uid: 0, gid: 0 })
      .file("d", "d", { uid: 0, gid: 4242 })
      .file("e", "e", { uid: 5, gid: 77 })
      .symlink("l0", "a", { uid: 0, gid: 0 })
      .symlink("l77", "a", { uid: 0, gid: 77 })
      .end(),
  );
  await applyLayer(layer, s.root);
  const owner = (p: string) => {
    const st = Deno.lstatSync(`${s.root}/${p}`);
    return `${st.uid}:${st.gid}`;
  };
  assertEquals(["a", "b", "c", "d", "e", "l0", "l77"].map(owner), [
    "0:0",
    "0:4242",
    "0:0",
    "0:4242",
    "5:77",
    "0:0",
    "0:77",
  ]);
  s.cleanup();
});

Deno.test("a file that replaces a symlink the layer already wrote through is not written through again", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/usr/lib`, { recursive: true });
  Deno.symlinkSync("usr/lib", `${s.root}/lib`);
  const layer = s.layer(
    new Tar().file("lib/foo", "through the link").file("lib", "now a file").file("lib/bar", "x")
      .end(),
  );
  await assertRejects(() => applyLayer(layer, s.root), InvalidInputError);
  assertEquals(Deno.readTextFileSync(`${s.root}/usr/lib/foo`), "through the link");
  assertEquals(Deno.readTextFileSync(`${s.root}/lib`), "now a file");
  assert(!Deno.readDirSync(`${s.root}/usr/lib`).toArray().some((e) => e.name === "bar"));
  s.cleanup();
});

Deno.test("paths are resolved again after a symlink they went through is replaced", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/q/z`, { recursive: true });
  Deno.mkdirSync(`${s.root}/usr/lib`, { recursive: true });
  Deno.mkdirSync(`${s.root}/opt`);
  Deno.symlinkSync("l1/z", `${s.root}/x`);
  Deno.symlinkSync("q", `${s.root}/l1`);
  Deno.symlinkSync("usr/lib", `${s.root}/lib`);
  // A symlink replaced by a symlink: later paths follow the new one.
  await applyLayer(
    s.layer(new Tar().file("lib/foo", "f").symlink("lib", "opt").file("lib/bar", "b").end()),
    s.root,
  );
  assertEquals(Deno.readTextFileSync(`${s.root}/usr/lib/foo`), "f");
  assertEquals(Deno.readTextFileSync(`${s.root}/opt/bar`), "b");
  // The second link of a chain replaced by a file: the chain is broken for later paths.
  const chain = s.layer(new Tar().file("x/y1", "1").file("l1", "file").file("x/y2", "2").end());
  await assertRejects(() => applyLayer(chain, s.root), InvalidInputError);
  assertEquals(Deno.readTextFileSync(`${s.root}/q/z/y1`), "1");
  assert(!Deno.readDirSync(`${s.root}/q/z`).toArray().some((e) => e.name === "y2"));
  s.canaryIntact();
  s.cleanup();
});

Deno.test("validated (one pass): writes through libc alone, with no Deno write grant", async () => {
  const s = sandbox();
  const layer = s.layer(new Tar().file("a", "a").symlink("l", "/etc").end());
  const apply = new URL("../../src/tar/apply.ts", import.meta.url).href;
  const opts = JSON.stringify({ validated: true, expectedSha256: await sha256Of(layer) });
  const script = `${s.base}/one-pass.ts`;
  Deno.writeTextFileSync(
    script,
    `import { applyLayer } from "${apply}";
     try {
       await applyLayer("${layer}", "${s.root}", ${opts});
     } catch (err) { console.error(String(err)); Deno.exit(3); }`,
  );
  const run = (perms: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", ...perms, script],
      stderr: "piped",
    }).output();
  const denied = await run([`--allow-write=${s.root}`]);
  const stderr = new TextDecoder().decode(denied.stderr);
  assertEquals(denied.code, 3, stderr);
  assert(stderr.includes(`run with --allow-ffi=${LIBC_PATH}`), stderr);
  assertEquals([...Deno.readDirSync(s.root)], []);
  const r = await run([`--allow-ffi=${LIBC_PATH}`]);
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
  assertEquals(Deno.readLinkSync(`${s.root}/l`), "/etc");
  s.canaryIntact();
  s.cleanup();
});
