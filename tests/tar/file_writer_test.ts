// Files created on the writer's thread: a plain layer of 16 MiB or more has its files finished,
// and often created, on a second thread while this one goes on with later entries. Whatever
// the threads' timing, the tree must be the one entries applied in order make: later entries
// replace earlier ones (also through a link to the same directory), a hardlink sees the file it
// names, a path under a file is refused, and no directory descriptor is closed early or leaked.
// Files may be queued before that thread has started; it reports the blob it copies from.
import { assert, assertEquals, assertRejects, assertThrows } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { snapshotTree } from "./tree.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";
import { FileWriteError, FileWriter } from "../../src/tar/file_writer.ts";
import { libc, O } from "../../src/host/libc.ts";

/** A tar whose blob is over 16 MiB (pax comments, empty files), so the file worker runs. */
function padded(): Tar {
  const t = new Tar();
  const comment = "c".repeat(1_000_000);
  for (let i = 0; i < 17; i++) t.pax([["comment", comment]]).file(`pad${i}`, "");
  return t;
}

async function applied(t: Tar): Promise<{ root: string; done: () => void; fds: number }> {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-file-writer-test-" });
  const root = `${base}/root`;
  Deno.mkdirSync(root);
  const layer = t.end().write(base);
  assert(Deno.statSync(layer).size >= 16 << 20);
  await applyLayer(layer, root);
  return { root, done: () => Deno.removeSync(base, { recursive: true }), fds: openUnder(root) };
}

const read = (p: string) => Deno.readTextFileSync(p);
/** Descriptors this process holds on anything under `dir`. */
const openUnder = (dir: string) =>
  [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith(dir);
    } catch {
      return false; // closed since it was listed
    }
  }).length;

Deno.test("a later entry replaces an earlier one the other thread may still be creating", async () => {
  const t = padded().dir("a");
  // Many rounds, so that some land while the first file is still queued and some after.
  for (let i = 0; i < 300; i++) t.file(`a/x${i}`, "one").file(`a/x${i}`, `two${i}`);
  const { root, done } = await applied(t);
  for (let i = 0; i < 300; i++) assertEquals(read(`${root}/a/x${i}`), `two${i}`);
  done();
});

Deno.test("a file created again on this thread gets its data, mode and mtime, small or large", async () => {
  // A name made earlier in the layer is created again on this thread (the other may still
  // be creating the first), its data copied by the other thread: a small file and one larger
  // than the applier's read chunk.
  const t = padded().dir("a");
  const large = (i: number) => new Uint8Array(100_000 + i).map((_, k) => (k * 31 + i) & 0xff);
  for (let i = 0; i < 50; i++) {
    t.file(`a/s${i}`, "one").file(`a/s${i}`, `small ${i}`, {
      mode: 0o640,
      mtime: 1_600_000_000 + i,
    });
    t.file(`a/l${i}`, "one").file(`a/l${i}`, large(i), { mode: 0o600, mtime: 1_500_000_000 + i });
  }
  const { root, done } = await applied(t);
  for (let i = 0; i < 50; i++) {
    assertEquals(read(`${root}/a/s${i}`), `small ${i}`);
    assertEquals(Deno.readFileSync(`${root}/a/l${i}`), large(i));
    const s = Deno.statSync(`${root}/a/s${i}`);
    const l = Deno.statSync(`${root}/a/l${i}`);
    assertEquals([s.mode! & 0o7777, s.mtime!.getTime()], [0o640, (1_600_000_000 + i) * 1000]);
    assertEquals([l.mode! & 0o7777, l.mtime!.getTime()], [0o600, (1_500_000_000 + i) * 1000]);
  }
  done();
});

Deno.test("a file replaced by a directory, and a directory by a file, in the same layer", async () => {
  const t = padded().dir("a");
  for (let i = 0; i < 100; i++) {
    t.file(`a/f${i}`, "file").dir(`a/f${i}`).file(`a/f${i}/y`, "y");
    t.dir(`a/d${i}`).file(`a/d${i}/z`, "z").file(`a/d${i}`, "now a file");
  }
  const { root, done } = await applied(t);
  for (let i = 0; i < 100; i++) {
    assert(Deno.lstatSync(`${root}/a/f${i}`).isDirectory);
    assertEquals(read(`${root}/a/f${i}/y`), "y");
    assertEquals(read(`${root}/a/d${i}`), "now a file");
  }
  done();
});

Deno.test("a name reached through a symlink to the same directory is the same name", async () => {
  const t = padded().dir("a").symlink("q", "a");
  for (let i = 0; i < 100; i++) {
    t.file(`a/x${i}`, "1").file(`q/x${i}`, `2-${i}`);
    t.dir(`q/y${i}`).file(`a/y${i}`, `file-${i}`);
  }
  const { root, done } = await applied(t);
  for (let i = 0; i < 100; i++) {
    assertEquals(read(`${root}/a/x${i}`), `2-${i}`);
    assertEquals(read(`${root}/a/y${i}`), `file-${i}`);
  }
  assertEquals(Deno.readLinkSync(`${root}/q`), "a");
  done();
});

/** 60 small files for the other thread to finish: what is queued behind them waits. */
function busy(t: Tar, tag: string): Tar {
  for (let i = 0; i < 60; i++) t.file(`busy/${tag}-${i}`, "b".repeat(100));
  return t;
}

Deno.test("an entry right behind a queued file sees that file, whatever it makes of its name", async () => {
  // Each hazard behind a queue of files the other thread has still to finish: the name the
  // next entry touches is then queued and not created yet.
  const t = padded().dir("a").dir("busy").symlink("q", "a");
  for (let i = 0; i < 5; i++) {
    busy(t, `f${i}`).file(`a/f${i}`, "file").dir(`a/f${i}`).file(`a/f${i}/y`, "y");
    busy(t, `s${i}`).file(`a/s${i}`, "file").symlink(`q/s${i}`, "target");
    busy(t, `x${i}`).file(`a/x${i}`, "1").file(`q/x${i}`, "2");
    busy(t, `h${i}`).file(`a/h${i}`, "h").hardlink(`a/l${i}`, `a/h${i}`);
  }
  const { root, done } = await applied(t);
  for (let i = 0; i < 5; i++) {
    assertEquals(read(`${root}/a/f${i}/y`), "y");
    assertEquals(Deno.readLinkSync(`${root}/a/s${i}`), "target");
    assertEquals(read(`${root}/a/x${i}`), "2");
    assertEquals(read(`${root}/a/l${i}`), "h");
  }
  done();
});

Deno.test("a hardlink right after its file links the file, with its data", async () => {
  const t = padded().dir("a");
  for (let i = 0; i < 200; i++) t.file(`a/h${i}`, `data${i}`).hardlink(`a/l${i}`, `a/h${i}`);
  const { root, done } = await applied(t);
  for (let i = 0; i < 200; i++) {
    assertEquals(read(`${root}/a/l${i}`), `data${i}`);
    assertEquals(Deno.statSync(`${root}/a/l${i}`).ino, Deno.statSync(`${root}/a/h${i}`).ino);
  }
  done();
});

/**
 * A layer of `files` files in `a/` (enough to queue on the worker), then the file `a/x` and a
 * path under it; applied onto a root that is empty, or holds one lower file. Refused.
 */
async function pathUnderQueuedFile(files: number, lower: boolean) {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-file-writer-test-" });
  const root = `${base}/root`;
  Deno.mkdirSync(root);
  const t = padded().dir("a");
  for (let i = 0; i < files; i++) t.file(`a/ok${i}`, "ok");
  const layer = t.file("a/x", "f").file("a/x/y", "g").end().write(base);
  if (lower) Deno.writeTextFileSync(`${root}/lower`, "");
  const err = await assertRejects(() => applyLayer(layer, root));
  assert(err instanceof LayerRejectedError, String(err));
  assertEquals(err.violations.map((v) => v.rule), ["parent-not-directory"]);
  return { root, cleanup: () => Deno.removeSync(base, { recursive: true }) };
}

Deno.test("a path under a file just queued is refused as under a file, not made a directory", async () => {
  // Over a lower file, so that what was written stays, to be looked at.
  const { root, cleanup } = await pathUnderQueuedFile(50, true);
  assert(Deno.lstatSync(`${root}/a/x`).isFile);
  cleanup();
});

Deno.test("onto an empty root, a refusal with files still queued leaves the root empty", async () => {
  const { root, cleanup } = await pathUnderQueuedFile(300, false);
  assertEquals([...Deno.readDirSync(root)], []);
  cleanup();
});

Deno.test("files across more directories than the parent cache holds: all whole, no descriptor leaked", async () => {
  const t = padded();
  for (let d = 0; d < 40; d++) t.dir(`d${d}`);
  // Round robin: every file's directory was dropped from the cache since its last file.
  for (let i = 0; i < 4000; i++) {
    t.file(`d${i % 40}/f${i}`, `${i}`.repeat(1 + (i % 7)), { mode: 0o640 });
  }
  const { root, done, fds } = await applied(t);
  assertEquals(fds, 0);
  for (let i = 0; i < 4000; i++) {
    const p = `${root}/d${i % 40}/f${i}`;
    assertEquals(read(p), `${i}`.repeat(1 + (i % 7)));
    assertEquals(Deno.statSync(p).mode! & 0o7777, 0o640);
  }
  const tree = snapshotTree(root);
  assertEquals(tree.length, 17 + 40 + 4000);
  done();
});

Deno.test("FileWriter: files queued before its thread runs are written; then the blob's inode", () => {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-file-writer-test-" });
  try {
    const blob = `${base}/blob`;
    const bytes = crypto.getRandomValues(new Uint8Array(60_000));
    Deno.writeFileSync(blob, bytes);
    const c = libc();
    const dir = c.open(base, O.RDONLY | O.DIRECTORY);
    const w = FileWriter.start(blob)!;
    try {
      // Queued at once, most likely before the worker's module even loaded.
      for (let i = 0; i < 20; i++) {
        const fd = c.openat(dir, `f${i}`, O.WRONLY | O.CREAT | O.EXCL, 0o600);
        const job = { fd, offset: i * 1000, size: 1000, uid: 0, gid: 0, mode: 0o600 };
        w.push({ ...job, mtime: 1_000_000 + i, chown: false, chmod: false }, `f${i}`);
      }
      w.drain();
      assertEquals(w.blobInode(), Deno.statSync(blob).ino);
    } finally {
      w.close();
      c.close(dir);
    }
    for (let i = 0; i < 20; i++) {
      assertEquals(Deno.readFileSync(`${base}/f${i}`), bytes.subarray(i * 1000, (i + 1) * 1000));
      assertEquals(Deno.statSync(`${base}/f${i}`).mtime!.getTime(), (1_000_000 + i) * 1000);
    }
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("FileWriter: a blob its thread cannot open fails the writer, blaming no entry", () => {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-file-writer-test-" });
  const w = FileWriter.start(`${base}/gone`)!;
  try {
    const err = assertThrows(() => w.blobInode(), Error, `could not open ${base}/gone`);
    assert(!(err instanceof FileWriteError));
    assertThrows(() => w.drain(), Error, "ENOENT");
  } finally {
    w.close();
    Deno.removeSync(base, { recursive: true });
  }
});
