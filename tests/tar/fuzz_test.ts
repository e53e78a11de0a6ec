// A seeded, bounded mutation fuzzer: flip, insert and truncate bytes of valid layers. Every
// mutant must validate to a summary or a refusal (exit 65), apply the same way (validate-then-
// apply and the single pass alike), and never write outside the target directory.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { assert, assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { snapshotTree } from "./tree.ts";
import { validateLayer } from "../../src/tar/validate.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { exitCodeOf } from "../../src/errors.ts";

// THINIMAGE_FUZZ_SEED and THINIMAGE_FUZZ_MUTANTS explore further; the suite runs the default.
const SEED = Number(Deno.env.get("THINIMAGE_FUZZ_SEED") ?? 0x7417_1a9e);
const MUTANTS_PER_SEED_LAYER = Number(Deno.env.get("THINIMAGE_FUZZ_MUTANTS") ?? 200);

/** mulberry32: small, seeded, good enough to pick offsets. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedLayers(): Uint8Array[] {
  const plain = new Tar()
    .dir("./")
    .dir("etc", { mode: 0o755 })
    .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", { mode: 0o644 })
    .symlink("etc/mtab", "/proc/self/mounts")
    .hardlink("etc/passwd-", "etc/passwd")
    .pax([["path", "usr/share/" + "long/".repeat(30) + "file"], ["mtime", "1700000000.5"]])
    .file("ignored", "pax named file\n")
    .gnuLong("L", "var/" + "deep/".repeat(25) + "gnu")
    .file("ignored2", "gnu named file\n")
    .file("old/.wh.removed")
    .file("opq/.wh..wh..opq")
    .symlink("up", "../../..")
    .file("bin/su", "x".repeat(700), { mode: 0o4755 })
    .end()
    .bytes();
  return [plain, gzipSync(plain)];
}

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(r() * n);
  const kind = pick(5);
  if (kind === 4) return mutateHeaderKeepingChecksum(src, r);
  if (kind === 0) { // flip 1-8 bytes, biased towards headers
    const out = src.slice();
    for (let i = pick(8) + 1; i > 0; i--) {
      const at = r() < 0.6 ? pick(Math.ceil(out.length / 512)) * 512 + pick(512) : pick(out.length);
      if (at < out.length) out[at] ^= 1 << pick(8);
    }
    return out;
  }
  if (kind === 1) { // insert 1-600 random bytes
    const at = pick(src.length);
    const ins = new Uint8Array(pick(600) + 1).map(() => pick(256));
    const out = new Uint8Array(src.length + ins.length);
    out.set(src.subarray(0, at));
    out.set(ins, at);
    out.set(src.subarray(at), at + ins.length);
    return out;
  }
  if (kind === 2) return src.slice(0, pick(src.length)); // truncate
  // overwrite a numeric header field with digits, spaces, NULs or base-256 bytes
  const out = src.slice();
  const fields = [[100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [148, 8], [156, 1]];
  const [off, len] = fields[pick(fields.length)];
  const block = pick(Math.ceil(out.length / 512)) * 512;
  const alphabet = [0x30, 0x37, 0x38, 0x20, 0x00, 0x80, 0xff, 0x2d, 0x35, 0x78];
  for (let i = 0; i < len && block + off + i < out.length; i++) {
    out[block + off + i] = alphabet[pick(alphabet.length)];
  }
  return out;
}

/**
 * Change name, link name, type or mode bytes of one header and fix its checksum, so the mutant
 * gets past the format checks and exercises the path rules and the applier.
 */
function mutateHeaderKeepingChecksum(src: Uint8Array, r: () => number): Uint8Array {
  const out = src.slice();
  const headers: number[] = [];
  for (let b = 0; b + 512 <= out.length; b += 512) {
    if (out[b + 257] === 0x75 && out[b + 258] === 0x73 && out[b + 259] === 0x74) headers.push(b);
  }
  if (!headers.length) return out;
  const h = headers[Math.floor(r() * headers.length)];
  const alphabet = [0x2f, 0x2e, 0x2e, 0x61, 0x00, 0xff, 0x2f, 0x77, 0x68, 0x31, 0x32, 0x35, 0x36];
  const spots = [[0, 100], [157, 100], [156, 1], [100, 8], [345, 20]];
  for (let n = Math.floor(r() * 4) + 1; n > 0; n--) {
    const [off, len] = spots[Math.floor(r() * spots.length)];
    out[h + off + Math.floor(r() * len)] = alphabet[Math.floor(r() * alphabet.length)];
  }
  out.fill(0x20, h + 148, h + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[h + i];
  out.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), h + 148);
  return out;
}

Deno.test("fuzz: mutants are accepted or refused (65), never crash, never write outside", async () => {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-fuzz-test-" });
  Deno.mkdirSync(`${base}/canary`);
  Deno.writeTextFileSync(`${base}/canary/secret`, "untouched");
  const canaryBefore = snapshotTree(`${base}/canary`, { mtimes: "exact", withRoot: true });
  const r = rng(SEED);
  const counts = { accepted: 0, refused: 0, applyRefused: 0 };
  let i = 0;
  for (const seed of seedLayers()) {
    for (let m = 0; m < MUTANTS_PER_SEED_LAYER; m++, i++) {
      const accepted = counts.accepted;
      const file = `${base}/m${i}.tar`;
      const mutant = mutate(seed, r);
      Deno.writeFileSync(file, mutant);
      let valid = true;
      try {
        await validateLayer(file);
      } catch (err) {
        assertEquals(exitCodeOf(err), 65, `mutant ${i} (seed ${SEED}): ${err}`);
        valid = false;
      }
      const root = `${base}/root${i}`;
      Deno.mkdirSync(root);
      try {
        await applyLayer(file, root);
        assert(valid, `mutant ${i}: applied although validation refused it`);
        counts.accepted++;
      } catch (err) {
        assertEquals(exitCodeOf(err), 65, `mutant ${i} (seed ${SEED}): ${err}`);
        if (valid) counts.applyRefused++; // e.g. a parent path that is a file: refused at apply
        else {
          counts.refused++;
          assertEquals([...Deno.readDirSync(root)].length, 0, `mutant ${i}: refused but wrote`);
        }
      }
      // The single pass (a blob validated when fetched) decides the same; it may have written
      // part of a refused layer, inside its own root only.
      const one = `${base}/one${i}`;
      Deno.mkdirSync(one);
      const digest = createHash("sha256").update(mutant).digest("hex");
      let oneOk = true;
      try {
        await applyLayer(file, one, { validated: true, expectedSha256: digest });
      } catch (err) {
        assertEquals(exitCodeOf(err), 65, `mutant ${i} one pass (seed ${SEED}): ${err}`);
        oneOk = false;
      }
      assertEquals(oneOk, valid && counts.accepted > accepted, `mutant ${i}: one pass differs`);
      Deno.removeSync(file);
    }
  }
  assertEquals(snapshotTree(`${base}/canary`, { mtimes: "exact", withRoot: true }), canaryBefore);
  const names = [...Deno.readDirSync(base)].map((e) => e.name);
  assert(names.every((n) => n === "canary" || /^(root|one)\d+$/.test(n)), `unexpected: ${names}`);
  // Both outcomes occur, so the fuzzer exercises the accepting paths too.
  assert(counts.accepted > 10 && counts.refused > 10, JSON.stringify(counts));
  console.log(`fuzz: ${i} mutants (seed ${SEED}): ${JSON.stringify(counts)}`);
  Deno.removeSync(base, { recursive: true });
});
