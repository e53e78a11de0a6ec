// The applier's kernel side: owners and groups as creation gives them, kernel refusals caused by
// a layer's content (exit 65, never 1), a target too small, the budget for directories made
// through dangling links, the verified-identity shortcut and the pool checkpoint.
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";
import { TemporaryError } from "../../src/errors.ts";
import { fileIdentity } from "../../src/host/file_identity.ts";

const isRoot = Deno.uid() === 0;

function sandbox() {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-apply-kernel-test-" });
  const root = `${base}/root`;
  Deno.mkdirSync(root);
  let n = 0;
  return {
    base,
    root,
    layer: (t: Tar) => t.write(base, `${n++}.tar`),
    cleanup: () => Deno.removeSync(base, { recursive: true }),
  };
}

async function sha256Of(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

function rejection(err: unknown): string[] {
  assert(err instanceof LayerRejectedError, String(err));
  return err.violations.map((v) => v.rule);
}

/** A tmpfs of `size` mounted inside `dir` (root only), unmounted by the returned function. */
async function tmpfs(dir: string, opts: string): Promise<() => Promise<void>> {
  Deno.mkdirSync(dir, { recursive: true });
  const r = await new Deno.Command("/usr/bin/mount", {
    args: ["-t", "tmpfs", "-o", opts, "thinimage-test", dir],
  }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
  return async () => {
    await new Deno.Command("/usr/bin/umount", { args: [dir] }).output();
  };
}

Deno.test("a file in a setgid directory gets the entry's group, not the directory's", async () => {
  const s = sandbox();
  Deno.mkdirSync(`${s.root}/lower`);
  Deno.chownSync(`${s.root}/lower`, 0, 60);
  Deno.chmodSync(`${s.root}/lower`, 0o2775);
  const layer = s.layer(
    new Tar()
      .dir("g", { mode: 0o2775, gid: 50 })
      .file("g/root-group", "x", { gid: 0 })
      .file("g/dir-group", "x", { gid: 50 })
      .file("lower/root-group", "x", { gid: 0 })
      .file("lower/dir-group", "x", { gid: 60 })
      .dir("g/sub", { mode: 0o755, gid: 0 })
      .file("g/sub/f", "x", { gid: 0 })
      .end(),
  );
  await applyLayer(layer, s.root);
  const gid = (p: string) => Deno.lstatSync(`${s.root}/${p}`).gid;
  assertEquals(
    ["g/root-group", "g/dir-group", "lower/root-group", "lower/dir-group", "g/sub", "g/sub/f"].map(
      gid,
    ),
    [0, 50, 0, 60, 0, 0],
  );
  assertEquals(Deno.lstatSync(`${s.root}/g`).mode! & 0o7777, 0o2775);
  s.cleanup();
});

Deno.test("a symlink chain longer than the kernel follows is refused (65), not a crash", async () => {
  const s = sandbox();
  const t = new Tar().dir("d");
  t.symlink("l0", "d");
  for (let i = 1; i <= 41; i++) t.symlink(`l${i}`, `l${i - 1}`);
  const layer = s.layer(t.file("l41/x", "through 41 links").end());
  // Something below the layer, so that what it wrote stays to be looked at (an empty root is
  // emptied again on a refusal).
  Deno.writeTextFileSync(`${s.root}/lower`, "");
  const err = await assertRejects(() => applyLayer(layer, s.root));
  assertEquals(rejection(err), ["symlink-loop"]);
  assertEquals([...Deno.readDirSync(`${s.root}/d`)], []);
  s.cleanup();
});

Deno.test("directories made through dangling links have a budget per layer", async () => {
  const s = sandbox();
  const t = new Tar();
  for (let i = 0; i < 4; i++) t.symlink(`l${i}`, `/made/${i}`).file(`l${i}/f`, "x");
  const layer = s.layer(t.end());
  // Within the budget the directory is made where the link points, inside the root.
  await applyLayer(layer, s.root, { limits: { linkedParents: 8 } });
  assertEquals(Deno.readTextFileSync(`${s.root}/made/3/f`), "x");
  const again = sandbox();
  const err = await assertRejects(() =>
    applyLayer(again.layer(t), again.root, { limits: { linkedParents: 3 } })
  );
  assertEquals(rejection(err), ["limit-linked-parents"]);
  s.cleanup();
  again.cleanup();
});

Deno.test({
  name: "a layer larger than the target is refused: before writing, or when the kernel says so",
  ignore: !isRoot,
  async fn() {
    const s = sandbox();
    const small = `${s.base}/small`;
    const unmount = await tmpfs(small, "size=1m,nr_inodes=64");
    try {
      // Its files alone add up to more than the free space: nothing is written.
      const big = s.layer(new Tar().file("a", "x").file("big", new Uint8Array(2 << 20)).end());
      const err = await assertRejects(() => applyLayer(big, small));
      assertEquals(rejection(err), ["limit-unpacked-bytes"]);
      assertEquals([...Deno.readDirSync(small)], []);
      // Small in bytes, too many for the filesystem's inodes: the kernel's ENOSPC.
      const t = new Tar();
      for (let i = 0; i < 100; i++) t.file(`f${i}`, "x");
      const many = await assertRejects(() => applyLayer(s.layer(t.end()), small));
      assertEquals(rejection(many), ["too-large-for-target"]);
    } finally {
      await unmount();
    }
    // Data that runs out of blocks on the worker's side (sendfile) is refused the same way:
    // 200 files of 4,097 bytes are 820 KB, and 1.6 MB of pages.
    const pages = `${s.base}/pages`;
    const unmount2 = await tmpfs(pages, "size=1m");
    try {
      const t2 = new Tar();
      // 17 MiB of pax comments first: a blob that size is applied with the worker, whatever
      // little its files hold.
      const comment = "c".repeat(1_000_000);
      for (let i = 0; i < 17; i++) t2.pax([["comment", comment]]).file(`pad${i}`, "");
      for (let i = 0; i < 200; i++) t2.file(`g${i}`, new Uint8Array(4097).fill(1));
      const blocks = await assertRejects(() => applyLayer(s.layer(t2.end()), pages));
      assertEquals(rejection(blocks), ["too-large-for-target"]);
    } finally {
      await unmount2();
      s.cleanup();
    }
  },
});

Deno.test("one pass: a blob untouched since its digest was verified is applied; a changed one is refused", async () => {
  const s = sandbox();
  const layer = s.layer(new Tar().file("etc/hosts", "127.0.0.1 localhost\n").end());
  const sha = await sha256Of(layer);
  const identity = fileIdentity(Deno.statSync(layer));
  const r = await applyLayer(layer, s.root, {
    validated: true,
    expectedSha256: sha,
    verifiedIdentity: identity,
    whiteouts: 0,
  });
  assertEquals(r.sha256, sha);
  assertEquals(Deno.readTextFileSync(`${s.root}/etc/hosts`), "127.0.0.1 localhost\n");
  // Same size, one byte changed in place: the identity moves, so the blob is hashed again.
  const bytes = Deno.readFileSync(layer);
  bytes[600] ^= 1;
  await new Promise((r) => setTimeout(r, 20)); // a change time of its own
  Deno.writeFileSync(layer, bytes);
  const again = sandbox();
  const err = await assertRejects(() =>
    applyLayer(layer, again.root, {
      validated: true,
      expectedSha256: sha,
      verifiedIdentity: identity,
      whiteouts: 0,
    })
  );
  assertEquals(rejection(err), ["sha256-mismatch"]);
  s.cleanup();
  again.cleanup();
});

Deno.test("the checkpoint sees the file bytes written, and what it throws stops the layer", async () => {
  const s = sandbox();
  const t = new Tar();
  for (let i = 0; i < 8; i++) t.file(`f${i}`, new Uint8Array(1 << 20).fill(i));
  const layer = s.layer(t.end());
  const seen: number[] = [];
  await applyLayer(layer, s.root, {
    checkpointBytes: 3 << 20,
    checkpoint: (written) => {
      seen.push(written);
      return Promise.resolve(2 << 20);
    },
  });
  assertEquals(seen, [3 << 20, 5 << 20, 7 << 20]);
  const again = sandbox();
  await assertRejects(
    () =>
      applyLayer(layer, again.root, {
        checkpointBytes: 2 << 20,
        checkpoint: () => Promise.reject(new TemporaryError("pool low")),
      }),
    TemporaryError,
  );
  // Stopped after the second file: the rest was never created.
  assert(!Deno.readDirSync(again.root).some((e) => e.name === "f7"));
  s.cleanup();
  again.cleanup();
});
