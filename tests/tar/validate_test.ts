// Every rule that must be refused, each next to a benign look-alike that must pass.
import { gzipSync } from "node:zlib";
import { assert, assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { LayerRejectedError, validateLayer } from "../../src/tar/validate.ts";
import type { LayerLimits } from "../../src/tar/limits.ts";
import type { Rule } from "../../src/tar/violation.ts";

const enc = new TextEncoder();
const tmp = Deno.makeTempDirSync({ prefix: "thinimage-validate-test-" });
let n = 0;

function write(bytes: Uint8Array): string {
  const p = `${tmp}/${n++}.tar`;
  Deno.writeFileSync(p, bytes);
  return p;
}

async function rejected(t: Tar | Uint8Array, rule: Rule, limits?: Partial<LayerLimits>) {
  const path = write(t instanceof Tar ? t.bytes() : t);
  try {
    await validateLayer(path, { limits });
  } catch (err) {
    assert(err instanceof LayerRejectedError, `expected LayerRejectedError, got ${err}`);
    assertEquals(err.exitCode, 65);
    const rules = err.violations.map((v) => v.rule);
    assert(rules.includes(rule), `expected rule ${rule}, got ${rules.join(", ")}: ${err.message}`);
    return err;
  }
  throw new Error(`expected the layer to be refused with ${rule}, but it was accepted`);
}

async function accepted(t: Tar | Uint8Array, limits?: Partial<LayerLimits>) {
  return await validateLayer(write(t instanceof Tar ? t.bytes() : t), { limits });
}

Deno.test("a bad header checksum is refused; a correct signed-sum checksum passes", async () => {
  await rejected(new Tar().file("a", "x", { checksumDelta: 1 }).end(), "header-checksum");
  // Old writers summed bytes as signed chars: a high byte in uname makes the sums differ.
  const signedOk = new Tar().file("a", "x", { uname: "\xff", raw: [[265, new Uint8Array([0xe9])]] })
    .end();
  const bytes = signedOk.bytes();
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : bytes[i];
    signed += b >= 0x80 ? b - 256 : b;
  }
  bytes.set(enc.encode(signed.toString(8).padStart(6, "0") + "\0 "), 148);
  assertEquals((await accepted(bytes)).files, 1);
});

Deno.test("truncation anywhere is refused; zero padding after the end marker passes", async () => {
  const whole = new Tar().file("a", "x".repeat(1000)).end().bytes();
  await rejected(whole.subarray(0, 700), "truncated"); // inside data
  await rejected(whole.subarray(0, 300), "truncated"); // inside the header
  await rejected(whole.subarray(0, 1536), "truncated"); // no end marker
  await rejected(whole.subarray(0, 2048), "truncated"); // one zero block
  await rejected(new Uint8Array(0), "truncated"); // empty file
  const padded = new Tar().file("a", "x").end().raw(new Uint8Array(8192)).bytes();
  assertEquals((await accepted(padded)).files, 1);
});

Deno.test("data after the end marker (a concatenated archive) is refused", async () => {
  await rejected(new Tar().file("a", "x").end().file("b", "y").end(), "trailing-data");
  // One stray byte anywhere in long zero padding, at the offset it sits at.
  for (const at of [0, 1, 4097, 70_001]) {
    const pad = new Uint8Array(at + 9);
    pad[at] = 7;
    const t = new Tar().file("a", "x").end().raw(pad);
    const err = await rejected(t, "trailing-data");
    assertEquals(err.violations[0].offset, 2048 + at);
    await rejected(gzipSync(t.bytes()), "trailing-data");
  }
  await accepted(new Tar().file("a", "x").end().raw(new Uint8Array(70_009)));
});

Deno.test("negative, overflowing and unparseable sizes are refused; base-256 sizes pass", async () => {
  const neg = new Uint8Array(12).fill(0xff);
  await rejected(new Tar().header({ name: "a", raw: [[124, neg]] }).end(), "size-negative");
  const huge = new Uint8Array(12).fill(0x7f);
  huge[0] = 0x80;
  await rejected(new Tar().header({ name: "a", raw: [[124, huge]] }).end(), "size-overflow");
  await rejected(
    new Tar().header({ name: "a", raw: [[124, "0000000001x\0"]] }).end(),
    "size-unparseable",
  );
  await rejected(
    new Tar().header({ name: "a", raw: [[124, "\0".repeat(12)]] }).end(),
    "size-unparseable",
  );
  await rejected(new Tar().pax([["size", "-1"]]).file("a", "").end(), "size-negative");
  await rejected(new Tar().pax([["size", "1e3"]]).file("a", "").end(), "size-unparseable");
  await rejected(
    new Tar().pax([["size", "99999999999999999999"]]).file("a", "").end(),
    "size-overflow",
  );
  const b256 = new Uint8Array(12);
  b256[0] = 0x80;
  b256[11] = 3;
  const ok = await accepted(new Tar().header({ name: "a", raw: [[124, b256]] }).data("abc").end());
  assertEquals(ok.unpackedBytes, 3);
  const paxSize = new Tar().pax([["size", "5"]]).header({ name: "b", size: 0 }).data("hello").end();
  assertEquals((await accepted(paxSize)).unpackedBytes, 5);
});

Deno.test("a directory, link or device with data is refused", async () => {
  await rejected(
    new Tar().header({ name: "d", typeflag: "5", size: 10 }).data("0123456789").end(),
    "size-unexpected",
  );
});

Deno.test("malformed pax records are refused; well-formed ones (binary xattrs too) pass", async () => {
  await rejected(new Tar().paxRaw("9 path=a").file("b").end(), "pax-malformed"); // no newline
  await rejected(new Tar().paxRaw("99 path=a\n").file("b").end(), "pax-malformed"); // length too long
  await rejected(new Tar().paxRaw("7 patha\n").file("b").end(), "pax-malformed"); // no '='
  await rejected(new Tar().paxRaw("09 path=a\n").file("b").end(), "pax-malformed"); // leading zero
  await rejected(new Tar().paxRaw("x path=a\n").file("b").end(), "pax-malformed");
  await rejected(new Tar().paxRaw("10 path=a\n\0\0").file("b").end(), "pax-malformed"); // junk after
  await rejected(
    new Tar().pax([["path", "a"], ["path", "b"]]).file("c").end(),
    "pax-duplicate-key",
  );
  await rejected(new Tar().pax([["frobnicate", "1"]]).file("c").end(), "pax-unknown-key");
  await rejected(new Tar().pax([["path", "x"]], true).file("c").end(), "pax-global-key");
  await rejected(
    new Tar().pax([["path", "a"]]).pax([["path", "b"]]).file("c").end(),
    "meta-repeated",
  );
  await rejected(new Tar().pax([["path", "a"]]).end(), "meta-dangling");
  await rejected(new Tar().pax([["mtime", "12abc"]]).file("c").end(), "field-unparseable");
  const ok = await accepted(
    new Tar()
      .pax([["comment", "made by hand"]], true)
      .pax([
        ["path", "déjà/vu"],
        ["mtime", "1700000000.123456789"],
        ["uid", "4000000000"],
        ["SCHILY.xattr.security.capability", new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0xff])],
        ["atime", "1"],
      ])
      .file("ignored-name", "x")
      .end(),
  );
  assertEquals(ok.largestFile?.path, "déjà/vu");
});

Deno.test("pax headers over the size limit are refused; at the limit they pass", async () => {
  const body = new Tar().pax([["comment", "y".repeat(500)]]).bytes().subarray(512);
  const len = Number(new TextDecoder().decode(body.subarray(0, 3)));
  await rejected(new Tar().pax([["comment", "y".repeat(500)]]).file("a").end(), "pax-too-large", {
    paxHeaderBytes: len - 1,
  });
  await accepted(new Tar().pax([["comment", "y".repeat(500)]]).file("a").end(), {
    paxHeaderBytes: len,
  });
  const many = new Tar();
  for (let i = 0; i < 5; i++) many.pax([[`SCHILY.xattr.user.k${i}`, "v".repeat(300)]], true);
  await rejected(many.file("a").end(), "pax-too-large", { paxHeaderBytes: 1000 });
  // Records unset by a later global header no longer count; replaced ones count once.
  const unset = new Tar();
  for (let i = 0; i < 5; i++) {
    unset.pax([[`SCHILY.xattr.user.k${i}`, "v".repeat(300)]], true);
    unset.pax([[`SCHILY.xattr.user.k${i}`, ""]], true);
    unset.pax([["comment", "c".repeat(300 + i)]], true);
  }
  await accepted(unset.file("a").end(), { paxHeaderBytes: 1000 });
  const big = new Tar().header({ name: "g", typeflag: "g", size: 2 ** 32 }).end();
  await rejected(big, "pax-too-large");
  await rejected(new Tar().gnuLong("L", "a".repeat(100)).file("x").end(), "longname-too-large", {
    paxHeaderBytes: 50,
  });
});

Deno.test("sparse files in every form are refused; a file named 'sparse' passes", async () => {
  await rejected(new Tar().header({ name: "s", typeflag: "S", magic: "gnu" }).end(), "sparse");
  for (
    const key of [
      "GNU.sparse.major",
      "GNU.sparse.size",
      "GNU.sparse.offset",
      "GNU.sparse.map",
      "GNU.sparse.name",
      "SCHILY.realsize",
      "SUN.holesdata",
    ]
  ) {
    await rejected(new Tar().pax([[key, "1"]]).file("s", "").end(), "sparse");
  }
  await accepted(new Tar().file("sparse", "x").file("GNU.sparse.major", "y").end());
});

Deno.test("volume and multi-volume headers are refused; files named V and M pass", async () => {
  await rejected(new Tar().header({ name: "label", typeflag: "V", magic: "gnu" }).end(), "volume");
  await rejected(new Tar().header({ name: "cont", typeflag: "M", magic: "gnu" }).end(), "volume");
  await rejected(new Tar().pax([["GNU.volume.label", "x"]]).file("a").end(), "volume");
  await accepted(new Tar().file("V").file("M").end());
});

Deno.test("unknown entry types and v7 headers are refused; contiguous files (7) pass", async () => {
  for (const t of ["Z", "D", "N", "A", "I", "X"]) {
    await rejected(new Tar().header({ name: "a", typeflag: t }).end(), "unknown-type");
  }
  await rejected(new Tar().file("a", "x", { magic: new Uint8Array(8) }).end(), "header-format");
  assertEquals(
    (await accepted(new Tar().header({ name: "c", typeflag: "7", size: 1 }).data("z").end())).files,
    1,
  );
});

Deno.test("devices and FIFOs are refused; a regular file named dev/null passes", async () => {
  await rejected(new Tar().header({ name: "dev/null", typeflag: "3" }).end(), "device");
  await rejected(new Tar().header({ name: "dev/sda", typeflag: "4" }).end(), "device");
  await rejected(new Tar().header({ name: "fifo", typeflag: "6" }).end(), "fifo");
  await accepted(new Tar().dir("dev").file("dev/null", "").end());
});

Deno.test("bad names are refused; their look-alikes pass", async () => {
  await rejected(new Tar().file("").end(), "name-empty");
  await rejected(new Tar().pax([["path", "/"]]).file("x").end(), "name-absolute");
  await rejected(new Tar().file("/etc/passwd").end(), "name-absolute");
  await rejected(new Tar().file("../escape").end(), "name-dotdot");
  await rejected(new Tar().file("a/../../b").end(), "name-dotdot");
  await rejected(new Tar().file("a/..").end(), "name-dotdot");
  await rejected(new Tar().gnuLong("L", "a\0b").file("x").end(), "name-nul");
  await rejected(new Tar().pax([["path", "a\0b"]]).file("x").end(), "name-nul");
  await rejected(new Tar().file(new Uint8Array([0x61, 0xff, 0x62])).end(), "name-utf8");
  await rejected(new Tar().file(new Uint8Array([0xc0, 0xaf])).end(), "name-utf8"); // overlong "/"
  await rejected(new Tar().pax([["path", new Uint8Array([0xe9])]]).file("x").end(), "name-utf8");
  await rejected(new Tar().pax([["path", "a/".repeat(2049)]]).file("x").end(), "path-too-long");
  await rejected(new Tar().pax([["path", "a".repeat(256)]]).file("x").end(), "component-too-long");
  // prefix + name combine in ustar
  await rejected(new Tar().file("b", "", { prefix: "/abs" }).end(), "name-absolute");
  const ok = await accepted(
    new Tar()
      .dir("./")
      .dir(".")
      .file("./a..b")
      .file("..c")
      .file("./d/./e")
      .file("日本語/ファイル")
      .symlink("abs", "/etc/passwd")
      .symlink("up", "../../../../etc")
      .pax([["path", ("x".repeat(254) + "/").repeat(16).slice(0, 4096)]])
      .file("long")
      .pax([["path", "y".repeat(255)]])
      .file("long2")
      .gnuLong("L", "zz/".repeat(100) + "z")
      .file("gnu")
      .file("name", "", { prefix: "some/prefix" })
      .end(),
  );
  assertEquals(ok.entries, 12);
});

Deno.test("hardlinks outside, to unknown targets or to directories are refused", async () => {
  await rejected(new Tar().hardlink("h", "/etc/passwd").end(), "hardlink-outside");
  await rejected(new Tar().file("a").hardlink("h", "../a").end(), "hardlink-outside");
  await rejected(new Tar().hardlink("h", "a").file("a").end(), "hardlink-unknown-target");
  await rejected(new Tar().file("a").hardlink("a", "a").end(), "hardlink-unknown-target");
  await rejected(new Tar().dir("d").hardlink("h", "d").end(), "hardlink-to-directory");
  await rejected(new Tar().file("a").hardlink("h", "").end(), "name-empty");
  // a file replaced by a directory later in the layer is no longer a hardlink target
  await rejected(new Tar().file("a").dir("a").hardlink("h", "a").end(), "hardlink-to-directory");
  const ok = await accepted(
    new Tar().file("a", "x").hardlink("h", "./a").symlink("s", "/x").hardlink("hs", "s").end(),
  );
  assertEquals(ok.hardlinks, 2);
  // What this layer put under a directory it then replaced with a file is gone: refused whether
  // the replacement comes before the first hardlink or after it.
  const under = (t: Tar) => t.dir("d").file("d/f").file("d").hardlink("h", "d/f").end();
  await rejected(under(new Tar()), "hardlink-unknown-target");
  await rejected(under(new Tar().file("x").hardlink("hx", "x")), "hardlink-unknown-target");
  const kept = (t: Tar) => t.dir("d").file("d/f").file("e").hardlink("h", "d/f").end();
  assertEquals((await accepted(kept(new Tar().file("x").hardlink("hx", "x")))).hardlinks, 2);
  // Made again after the replacement: a target once more. A grandparent's replacement counts.
  const again = new Tar().dir("d").file("d/f").file("d").dir("d").file("d/f").hardlink("h", "d/f");
  assertEquals((await accepted(again.end())).hardlinks, 1);
  await rejected(
    new Tar().dir("d").dir("d/e").file("d/e/f").file("d").hardlink("h", "d/e/f").end(),
    "hardlink-unknown-target",
  );
  // A directory replaced by a symlink: what was under it is gone too.
  await rejected(
    new Tar().dir("d").file("d/f").symlink("d", "x").hardlink("h", "d/f").end(),
    "hardlink-unknown-target",
  );
  // A dir/file flip elsewhere leaves targets alone.
  const flips = new Tar().dir("d").file("d/f");
  for (let i = 0; i < 50; i++) i % 2 ? flips.dir("x") : flips.file("x");
  assertEquals((await accepted(flips.hardlink("h", "d/f").end())).hardlinks, 1);
});

Deno.test("directory paths the applier keeps are limited: one byte over is refused", async () => {
  // Each directory counts its path's UTF-8 bytes plus 64: "a" 65, "é" 66, "a/b" 67.
  const dirs = () => new Tar().dir("a").dir("é").dir("a/b").file("a/b/f").end();
  await accepted(dirs(), { directoryPathBytes: 198 });
  const err = await rejected(dirs(), "limit-directory-paths", { directoryPathBytes: 197 });
  assertEquals(err.violations.length, 1); // fatal: reading stops there
  // The same directory twice counts twice (the applier may keep it twice).
  await rejected(new Tar().dir("a").dir("a").end(), "limit-directory-paths", {
    directoryPathBytes: 129,
  });
});

Deno.test("whiteouts naming . or .. or reserved names are refused; real whiteouts pass", async () => {
  await rejected(new Tar().file("d/.wh..").end(), "whiteout-dot");
  await rejected(new Tar().file("d/.wh...").end(), "whiteout-dot");
  await rejected(new Tar().file(".wh.").end(), "whiteout-dot");
  await rejected(new Tar().file(".wh..wh.plnk").end(), "whiteout-reserved");
  await rejected(new Tar().file(".wh.x/y").end(), "whiteout-parent");
  await rejected(new Tar().symlink(".wh.x", "/etc").end(), "whiteout-type");
  const ok = await accepted(new Tar().file(".wh.gone").file("d/.wh..wh..opq").file("x.wh.y").end());
  assertEquals(ok.whiteouts, 2);
  assertEquals(ok.files, 1);
});

Deno.test("symlinks with empty, over-long, NUL or non-UTF-8 targets are refused", async () => {
  await rejected(new Tar().symlink("s", "").end(), "symlink-empty");
  await rejected(
    new Tar().pax([["linkpath", "t".repeat(20)]]).symlink("s", "x").end(),
    "symlink-too-long",
    {
      symlinkTargetBytes: 19,
    },
  );
  await accepted(new Tar().pax([["linkpath", "t".repeat(20)]]).symlink("s", "x").end(), {
    symlinkTargetBytes: 20,
  });
  await rejected(new Tar().symlink("s", new Uint8Array([0xff])).end(), "link-utf8");
  await rejected(new Tar().gnuLong("K", "a\0b").symlink("s", "x").end(), "link-nul");
});

Deno.test("limits: entries, unpacked bytes, bytes per file, path depth", async () => {
  const three = new Tar().file("a", "12").file("b", "34").file("c", "56").end();
  await rejected(three, "limit-entries", { entries: 2 });
  await accepted(three, { entries: 3 });
  await rejected(three, "limit-unpacked-bytes", { unpackedBytes: 5 });
  await accepted(three, { unpackedBytes: 6 });
  await rejected(three, "limit-file-bytes", { fileBytes: 1 });
  await accepted(three, { fileBytes: 2 });
  await rejected(new Tar().file("a/b/c/d").end(), "path-depth", { pathDepth: 3 });
  await accepted(new Tar().file("a/b/c/d").end(), { pathDepth: 4 });
});

Deno.test("violations name the rule and the entry, and several are reported at once", async () => {
  const err = await rejected(new Tar().file("../a").file("/b").file("ok").end(), "name-dotdot");
  assertEquals(err.violations.map((v) => [v.rule, v.entry]), [["name-dotdot", "../a"], [
    "name-absolute",
    "/b",
  ]]);
  assert(err.message.includes("'../a'"));
});

Deno.test("gzip layers are read as a stream; other compressions are refused by name", async () => {
  const plain = new Tar().file("a", "hello").end().bytes();
  const s = await accepted(gzipSync(plain));
  assertEquals([s.compression, s.files], ["gzip", 1]);
  const gz = gzipSync(plain);
  await rejected(gz.subarray(0, gz.length - 10), "gzip-corrupt");
  const junk = new Uint8Array(gz.length + 4);
  junk.set(gz);
  junk.set([1, 2, 3, 4], gz.length);
  await rejected(junk, "gzip-corrupt"); // nothing after the stream is silently dropped
  const zstd = new Uint8Array(1024);
  zstd.set([0x28, 0xb5, 0x2f, 0xfd]);
  const err = await rejected(zstd, "compression-unsupported");
  assert(err.message.includes("zstd"));
  const xz = new Uint8Array(1024);
  xz.set([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  await rejected(xz, "compression-unsupported");
  await rejected(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 1]), "compression-unsupported");
  // A tar whose first file is named like bzip2's magic is still a tar.
  await accepted(new Tar().file("BZh9-notes").end());
});

Deno.test("validation with sha256 hashes the blob as stored", async () => {
  const bytes = gzipSync(new Tar().file("a", "x").end().bytes());
  const p = write(bytes);
  const s = await validateLayer(p, { sha256: true });
  const { createHash } = await import("node:crypto");
  assertEquals(s.sha256, createHash("sha256").update(bytes).digest("hex"));
});

Deno.test({
  name: "cleanup",
  fn() {
    Deno.removeSync(tmp, { recursive: true });
  },
});
