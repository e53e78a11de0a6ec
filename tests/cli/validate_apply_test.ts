// `thinimage validate` and `thinimage apply` as a user runs them: least privilege (nothing but
// --allow-read and --allow-env, plus --allow-ffi for libc for apply: it writes through the
// kernel's *at calls, not Deno's file ops), exit codes, --json output.
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { Tar } from "../tar/tar_builder.ts";
import { LIBC_PATH } from "../../src/host/libc.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

async function thinimage(perms: string[], args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...perms, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function setup() {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-cli-tar-test-" });
  const good = new Tar().dir("etc").file("etc/hosts", "127.0.0.1 localhost\n").symlink("l", "/etc")
    .end().write(base, "good.tar");
  const bad = new Tar().file("ok", "x").file("../../escape", "x").hardlink("h", "/etc/shadow").end()
    .write(base, "bad.tar");
  return { base, good, bad, stateDir: `${base}/state-must-not-exist` };
}

const READ_ENV = ["--allow-read", "--allow-env"];
const APPLY = [...READ_ENV, `--allow-ffi=${LIBC_PATH}`];

Deno.test("validate: works with only --allow-read --allow-env; summary on stderr, JSON on stdout", async () => {
  const s = setup();
  const env = { THINIMAGE_STATE_DIR: s.stateDir };
  const human = await thinimage(READ_ENV, ["validate", s.good], env);
  assertEquals(human.code, 0, human.stderr);
  assertEquals(human.stdout, "");
  assertStringIncludes(human.stderr, "3 entries: 1 files, 1 directories, 1 symlinks");
  const json = await thinimage(READ_ENV, ["validate", s.good, "--json"], env);
  assertEquals(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  assertEquals([doc.valid, doc.entries, doc.files, doc.unpackedBytes], [true, 3, 1, 20]);
  assertEquals(doc.largestFile, { path: "etc/hosts", bytes: 20 });
  assert(
    !Deno.statSync(s.base).isFile &&
      ![...Deno.readDirSync(s.base)].some((e) => e.name.startsWith("state")),
  );
  Deno.removeSync(s.base, { recursive: true });
});

Deno.test("validate: a hostile layer exits 65 naming each rule and entry", async () => {
  const s = setup();
  const r = await thinimage(READ_ENV, ["validate", s.bad, "--json"]);
  assertEquals(r.code, 65, r.stderr);
  const doc = JSON.parse(r.stdout);
  assertEquals(doc.error.code, 65);
  assertEquals(
    doc.error.details.violations.map((v: { rule: string; entry: string }) => [v.rule, v.entry]),
    [["name-dotdot", "../../escape"], ["hardlink-outside", "h"]],
  );
  const human = await thinimage(READ_ENV, ["validate", s.bad]);
  assertEquals(human.code, 65);
  assertStringIncludes(human.stderr, "name-dotdot '../../escape'");
  Deno.removeSync(s.base, { recursive: true });
});

Deno.test("validate: usage errors exit 2", async () => {
  const s = setup();
  assertEquals((await thinimage(READ_ENV, ["validate"])).code, 2);
  const missing = await thinimage(READ_ENV, ["validate", `${s.base}/nope.tar`]);
  assertEquals(missing.code, 2);
  assertStringIncludes(missing.stderr, "nope.tar");
  assertEquals((await thinimage(READ_ENV, ["validate", s.base])).code, 2, "a directory");
  Deno.removeSync(s.base, { recursive: true });
});

Deno.test("apply: works with no write grant at all (libc only); a 20 MiB layer too", async () => {
  const s = setup();
  const dir = `${s.base}/root`;
  Deno.mkdirSync(dir);
  const perms = APPLY;
  const noLinks = new Tar().dir("etc").file("etc/hosts", "127.0.0.1 localhost\n").hardlink(
    "h",
    "etc/hosts",
  )
    .end().write(s.base, "nolinks.tar");
  const r = await thinimage(perms, ["apply", noLinks, dir, "--json"], {
    THINIMAGE_STATE_DIR: s.stateDir,
  });
  assertEquals(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assertEquals([doc.entries, doc.hardlinks], [3, 1]);
  assertEquals(doc.sha256, undefined, "not hashed unless a digest is expected or asked for");
  assert(!r.stderr.includes("sha256"), r.stderr);
  const { createHash } = await import("node:crypto");
  const digestOf = (f: string) => createHash("sha256").update(Deno.readFileSync(f)).digest("hex");
  // Asked for, the digest is reported (human output on stderr); given, it is held to.
  Deno.mkdirSync(`${dir}2`);
  const human = await thinimage(perms, ["apply", noLinks, `${dir}2`, "--digest"]);
  assertEquals(human.code, 0, human.stderr);
  assertStringIncludes(human.stderr, `sha256 ${digestOf(noLinks)}`);
  Deno.mkdirSync(`${dir}3`);
  const wrong = await thinimage(perms, ["apply", noLinks, `${dir}3`, "--sha256", "0".repeat(64)]);
  assertEquals(wrong.code, 65, wrong.stderr);
  assertStringIncludes(wrong.stderr, "sha256-mismatch");
  assertEquals([...Deno.readDirSync(`${dir}3`)], [], "refused: nothing left");
  assertEquals(Deno.readTextFileSync(`${dir}/etc/hosts`), "127.0.0.1 localhost\n");
  const big = new Tar().file("big", new Uint8Array(20 << 20).fill(7)).end().write(
    s.base,
    "big.tar",
  );
  const rb = await thinimage(perms, ["apply", big, dir, "--digest", "--json"]);
  assertEquals(rb.code, 0, rb.stderr);
  assertEquals(JSON.parse(rb.stdout).sha256, digestOf(big));
  assertEquals(Deno.statSync(`${dir}/big`).size, 20 << 20);
  // Read scoped to the two paths: the workers' modules are unreadable, so this thread does
  // their work; same result, and no error printed.
  const scopedDir = `${s.base}/scoped`;
  Deno.mkdirSync(scopedDir);
  const scoped = await thinimage([
    `--allow-read=${big},${scopedDir}`,
    "--allow-env",
    `--allow-ffi=${LIBC_PATH}`,
  ], ["apply", big, scopedDir, "--digest", "--json"]);
  assertEquals(scoped.code, 0, scoped.stderr);
  assertEquals(JSON.parse(scoped.stdout).sha256, JSON.parse(rb.stdout).sha256);
  assert(!scoped.stderr.includes("rror"), scoped.stderr);
  assertEquals(Deno.readFileSync(`${scopedDir}/big`), Deno.readFileSync(`${dir}/big`));
  assert(![...Deno.readDirSync(s.base)].some((e) => e.name.startsWith("state")));
  Deno.removeSync(s.base, { recursive: true });
});

Deno.test("apply: without --allow-ffi it is refused before any write, naming the flag", async () => {
  const s = setup();
  const dir = `${s.base}/root`;
  Deno.mkdirSync(dir);
  // Unscoped write is not enough: writes into an image go through libc only.
  const denied = await thinimage([...READ_ENV, "--allow-write"], ["apply", s.good, dir]);
  assertEquals(denied.code, 1, denied.stderr);
  assertStringIncludes(denied.stderr, `--allow-ffi=${LIBC_PATH}`);
  assertEquals([...Deno.readDirSync(dir)].length, 0);
  // Another library's grant does not cover libc.
  const other = await thinimage([...READ_ENV, "--allow-ffi=/nonexistent/libc.so.6"], [
    "apply",
    s.good,
    dir,
  ]);
  assertEquals(other.code, 1, other.stderr);
  assertEquals([...Deno.readDirSync(dir)].length, 0);
  const r = await thinimage(APPLY, ["apply", s.good, dir]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(Deno.readLinkSync(`${dir}/l`), "/etc");
  Deno.removeSync(s.base, { recursive: true });
});

Deno.test("apply: a hostile layer exits 65 and writes nothing", async () => {
  const s = setup();
  const dir = `${s.base}/root`;
  Deno.mkdirSync(dir);
  const r = await thinimage(APPLY, ["apply", s.bad, dir]);
  assertEquals(r.code, 65, r.stderr);
  assertEquals([...Deno.readDirSync(dir)].length, 0);
  assertEquals((await thinimage(APPLY, ["apply", s.good])).code, 2);
  const notDir = await thinimage(APPLY, ["apply", s.good, s.good]);
  assertEquals(notDir.code, 2, notDir.stderr);
  const missing = await thinimage(APPLY, ["apply", s.good, `${dir}/nope`]);
  assertEquals(missing.code, 2, missing.stderr);
  Deno.removeSync(s.base, { recursive: true });
});
