// An absolute symlink target resolves at the target directory's root wherever the link sits:
// `a/b/l -> /t/u` then `a/b/l/x` lands at `t/u/x` inside the target. A link at the root cannot
// tell this apart from resolving relative to the link's directory; a nested one can. Written
// against applyLayer's behaviour (what the target holds afterwards), not the resolver's code.
import { assert, assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { createHash } from "node:crypto";

function sandbox() {
  const base = Deno.makeTempDirSync({ prefix: "thinimage-nested-link-" });
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

/** Every path under `dir` (relative), for a message that shows where things went. */
function listing(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${dir}/${prefix}`)) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(e.isSymlink ? `${p} -> ${Deno.readLinkSync(`${dir}/${p}`)}` : p);
    if (e.isDirectory) out.push(...listing(dir, p));
  }
  return out.sort();
}

function sha256(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

for (const mode of ["validate, then apply", "validated (one pass)"] as const) {
  const apply = async (layer: string, root: string) =>
    mode === "validated (one pass)"
      ? await applyLayer(layer, root, { validated: true, expectedSha256: sha256(layer) })
      : await applyLayer(layer, root);

  Deno.test(`${mode}: a/b/l -> /t/u, then a/b/l/x lands at t/u/x in the target`, async () => {
    const s = sandbox();
    try {
      await apply(
        s.layer(
          new Tar().dir("a").dir("a/b").dir("t").dir("t/u").symlink("a/b/l", "/t/u")
            .file("a/b/l/x", "through the link").dir("a/b/l/d").file("a/b/l/d/y", "deeper").end(),
        ),
        s.root,
      );
      const tree = listing(s.root).join("\n");
      assertEquals(Deno.readTextFileSync(`${s.root}/t/u/x`), "through the link", tree);
      assertEquals(Deno.readTextFileSync(`${s.root}/t/u/d/y`), "deeper", tree);
      assertEquals(Deno.readLinkSync(`${s.root}/a/b/l`), "/t/u");
      assertEquals(listing(s.root), [
        "a",
        "a/b",
        "a/b/l -> /t/u",
        "t",
        "t/u",
        "t/u/d",
        "t/u/d/y",
        "t/u/x",
      ]);
    } finally {
      s.cleanup();
    }
  });

  Deno.test(`${mode}: a nested absolute link whose target the layer never made creates it at the root`, async () => {
    const s = sandbox();
    try {
      await apply(
        s.layer(new Tar().dir("a").dir("a/b").symlink("a/b/l", "/t/u").file("a/b/l/x", "x").end()),
        s.root,
      );
      assertEquals(Deno.readTextFileSync(`${s.root}/t/u/x`), "x", listing(s.root).join("\n"));
      assert(!listing(s.root).some((p) => p.startsWith("a/b/t")), listing(s.root).join("\n"));
    } finally {
      s.cleanup();
    }
  });

  Deno.test(`${mode}: chained nested links (relative to absolute, absolute with ..) and a lower layer's link`, async () => {
    const s = sandbox();
    try {
      // Layer 1 leaves the links; layer 2 (a new applier, nothing cached) writes through them.
      await apply(
        s.layer(
          new Tar().dir("a").dir("a/b").dir("t").dir("t/u").dir("v")
            .symlink("a/b/rel", "abs") // relative: a/b/abs
            .symlink("a/b/abs", "/t/u") // absolute: the root's t/u
            .symlink("a/b/up", "/../../v") // .. at the root stays there: v
            .end(),
        ),
        s.root,
      );
      await apply(
        s.layer(new Tar().file("a/b/rel/one", "1").file("a/b/up/two", "2").end()),
        s.root,
      );
      const tree = listing(s.root).join("\n");
      assertEquals(Deno.readTextFileSync(`${s.root}/t/u/one`), "1", tree);
      assertEquals(Deno.readTextFileSync(`${s.root}/v/two`), "2", tree);
      assert(!tree.includes("a/b/t"), tree);
    } finally {
      s.cleanup();
    }
  });
}
