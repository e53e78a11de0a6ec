// Equivalence with GNU tar: for benign layers without whiteouts, `applyLayer` produces the same
// tree (names, types, modes, owners, link targets, contents, hardlinks, mtimes) as GNU tar
// extracting the same file as root.
import { assert, assertEquals } from "../helpers/assert.ts";
import { snapshotTree } from "./tree.ts";
import { applyLayer } from "../../src/tar/apply.ts";

const TAR = ["/usr/bin/tar", "/bin/tar"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

async function run(args: string[]): Promise<void> {
  const out = await new Deno.Command(TAR!, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`tar ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A tree with what real layers hold: odd modes and owners, links, long and non-ASCII names. */
function buildFixture(dir: string): void {
  const w = (p: string, data: string | Uint8Array, mode = 0o644, uid = 0, gid = 0) => {
    Deno.mkdirSync(`${dir}/${p}`.replace(/\/[^/]*$/, ""), { recursive: true });
    if (typeof data === "string") Deno.writeTextFileSync(`${dir}/${p}`, data);
    else Deno.writeFileSync(`${dir}/${p}`, data);
    Deno.chownSync(`${dir}/${p}`, uid, gid);
    Deno.chmodSync(`${dir}/${p}`, mode);
  };
  w("usr/bin/su", "su binary", 0o4755);
  w("usr/bin/wall", "wall binary", 0o2755, 0, 5);
  w("usr/bin/perl", "perl");
  Deno.linkSync(`${dir}/usr/bin/perl`, `${dir}/usr/bin/perl5.36`);
  w("etc/shadow", "root:*:1::::::\n", 0o640, 0, 42);
  w("home/user/.profile", "export X=1\n", 0o600, 1000, 1000);
  w("empty", "", 0o444);
  w("no-perms", "secret", 0o000);
  // Over 16 MiB: plain tars of it are applied with the file worker (smaller ones on one thread).
  w("big.bin", new Uint8Array(17 * 1024 * 1024 + 17).map((_, i) => (i * 7919) & 0xff));
  w("unicode/déjà vu/日本語.txt", "utf-8 names\n");
  w(`long/${"component-".repeat(20)}/${"x".repeat(200)}.txt`, "long path\n");
  Deno.mkdirSync(`${dir}/tmp`);
  Deno.chmodSync(`${dir}/tmp`, 0o1777);
  Deno.mkdirSync(`${dir}/private`, { mode: 0o700 });
  Deno.chownSync(`${dir}/private`, 33, 33);
  Deno.mkdirSync(`${dir}/empty-dir`);
  Deno.symlinkSync("/usr/bin/perl", `${dir}/usr/bin/abs-link`);
  Deno.symlinkSync("../bin/su", `${dir}/usr/bin/rel-link`);
  Deno.symlinkSync("dangling/target", `${dir}/dangling`);
  Deno.symlinkSync("x".repeat(300), `${dir}/long-target`);
}

const cases: [string, string[]][] = [
  ["GNU format", ["--format=gnu"]],
  ["POSIX pax format", ["--format=posix"]],
  ["gzip-compressed GNU format", ["--format=gnu", "-z"]],
];

for (const [name, flags] of cases) {
  Deno.test({
    name: `equivalence with GNU tar: fixture tree and /etc, ${name}`,
    ignore: TAR === undefined,
    async fn() {
      const base = Deno.makeTempDirSync({ prefix: "thinimage-equivalence-test-" });
      Deno.mkdirSync(`${base}/src`);
      buildFixture(`${base}/src`);
      for (const [label, srcDir] of [["fixture", `${base}/src`], ["etc", "/etc"]]) {
        const layer = `${base}/${label}.tar`;
        await run(["-c", ...flags, "--numeric-owner", "-f", layer, "-C", srcDir, "."]);
        const gnu = `${base}/${label}-gnu`;
        const ours = `${base}/${label}-ours`;
        Deno.mkdirSync(gnu);
        Deno.mkdirSync(ours);
        await run([
          "-x",
          "--numeric-owner",
          "--same-permissions",
          "--same-owner",
          "-f",
          layer,
          "-C",
          gnu,
        ]);
        await applyLayer(layer, ours);
        const a = snapshotTree(gnu, { withRoot: true, mtimes: true });
        const b = snapshotTree(ours, { withRoot: true, mtimes: true });
        assert(a.length > 10, `${label}: GNU tar extracted only ${a.length} entries`);
        assertEquals(b, a, `${label}: trees differ`);
      }
      Deno.removeSync(base, { recursive: true });
    },
  });
}
