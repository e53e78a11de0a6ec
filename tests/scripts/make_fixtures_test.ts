/**
 * The fixture generator builds what the real bucket holds (three images of five layers, 1-3
 * shared, 4 shared by node and python) with the tar features real layers have, plus the
 * hostile and gzipped images; and it does so byte for byte the same on every run.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "../helpers/assert.ts";

const SCRIPT = new URL("../../scripts/make-fixtures.ts", import.meta.url).pathname;

async function generate(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-fixtures-test-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, "--out", dir],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return dir;
}

async function digests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const image of ["golang", "node", "python", "hostile", "gzipped"]) {
    for await (const e of Deno.readDir(`${dir}/images/${image}`)) {
      out[`${image}/${e.name}`] = createHash("sha256").update(
        await Deno.readFile(`${dir}/images/${image}/${e.name}`),
      ).digest("hex");
    }
  }
  return out;
}

async function listing(path: string, gzip = false): Promise<string> {
  const out = await new Deno.Command("/usr/bin/tar", {
    args: [gzip ? "-tzvf" : "-tvf", path, "--numeric-owner"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("fixtures: deterministic, and sharing layers as the real bucket does", async () => {
  const [a, b] = [await generate(), await generate()];
  try {
    const da = await digests(a);
    assertEquals(await digests(b), da, "two runs give identical bytes");
    for (const i of [1, 2, 3]) {
      assertEquals(da[`node/${i}.tar`], da[`golang/${i}.tar`]);
      assertEquals(da[`python/${i}.tar`], da[`golang/${i}.tar`]);
    }
    assertEquals(da["node/4.tar"], da["python/4.tar"]);
    assert(da["golang/4.tar"] !== da["node/4.tar"]);
    assert(da["node/5.tar"] !== da["python/5.tar"]);
    assertEquals([da["hostile/1.tar"], da["hostile/2.tar"]], [
      da["golang/1.tar"],
      da["golang/2.tar"],
    ]);
    assertEquals(Object.keys(da).filter((k) => k.startsWith("golang/")).length, 5);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("fixtures: real layer features: absolute symlinks, hardlinks, setuid, whiteouts, no ./", async () => {
  const dir = await generate();
  try {
    const base = await listing(`${dir}/images/golang/1.tar`);
    assert(base.includes("etc/alternatives/aclocal -> /usr/bin/aclocal-1.16"), "absolute symlink");
    assert(base.includes("usr/bin/perl5.36.0 link to usr/bin/perl"), "hardlink");
    assert(/^-rwsr-xr-x 0\/0 .* usr\/bin\/passwd$/m.test(base), "setuid, numeric owner 0/0");
    assert(!/ \.\//.test(base), "names without ./");
    const upper = [2, 3, 4, 5].map((i) => `${dir}/images/golang/${i}.tar`);
    const uppers = (await Promise.all(upper.map((p) => listing(p)))).join("");
    assert(uppers.includes("etc/.wh.motd"), "whiteout");
    assert(uppers.includes("var/cache/apt/.wh..wh..opq"), "opaque whiteout");
    assert((await listing(`${dir}/images/hostile/3.tar`)).includes(" ../escape"));
    const gz = await Deno.readFile(`${dir}/images/gzipped/2.tar`);
    assertEquals([gz[0], gz[1]], [0x1f, 0x8b]);
    assert(
      (await listing(`${dir}/images/gzipped/2.tar`, true)).includes("usr/share/gzipped/data.bin"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
