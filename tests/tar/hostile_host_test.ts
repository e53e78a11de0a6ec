// Layers aimed at the host's own files, not at a canary beside the target: climbing names,
// climbing and absolute symlinks written through, hardlinks to host files. They must be refused
// or land inside the target. Run where a write anywhere on the host shows (tests/tar/escape_test.ts
// runs this file in a private mount namespace over an overlay of /), and their own check
// here is that /etc holds none of the names they aim at.
import { assert, assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";

const NAME = "thinimage-escaped";
const CLIMB = "../".repeat(12);

const LAYERS: [string, Tar][] = [
  ["a climbing name", new Tar().file(`${CLIMB}etc/${NAME}-1`, "pwned")],
  [
    "a climbing symlink written through",
    new Tar().symlink("up", CLIMB.slice(0, -1)).file(`up/etc/${NAME}-2`, "pwned"),
  ],
  [
    "an absolute symlink written through",
    new Tar().symlink("abs", "/etc").file(`abs/${NAME}-3`, "pwned"),
  ],
  [
    "a nested absolute symlink written through",
    new Tar().dir("a").dir("a/b").symlink("a/b/l", "/etc").file(`a/b/l/${NAME}-4`, "pwned"),
  ],
  [
    "a directory made through a climbing symlink",
    new Tar().symlink("up", CLIMB.slice(0, -1)).dir(`up/etc/${NAME}-5`),
  ],
  [
    "a hardlink to a host file",
    new Tar().hardlink(`h`, `${CLIMB}etc/hostname`).file(`${CLIMB}etc/${NAME}-6`, "pwned"),
  ],
];

Deno.test({
  name: "layers aimed at the host's files are refused or stay inside the target",
  // Aimed at the real /etc: only inside escape_test.ts's namespace, where / is an overlay.
  ignore: Deno.env.get("THINIMAGE_ESCAPE_NAMESPACE") !== "1",
  fn: async () => {
    const base = await Deno.makeTempDir({ prefix: "thinimage-hostile-host-" });
    try {
      for (const [i, [what, tar]] of LAYERS.entries()) {
        const root = `${base}/root${i}`;
        await Deno.mkdir(root);
        const layer = tar.end().write(base, `${i}.tar`);
        for (const validated of [false, true]) {
          try {
            await applyLayer(
              layer,
              root,
              validated
                ? {
                  validated: true,
                  expectedSha256: new TextDecoder().decode(
                    (await new Deno.Command("/usr/bin/sha256sum", {
                      args: [layer],
                      stdout: "piped",
                    })
                      .output()).stdout,
                  ).split(" ")[0],
                }
                : {},
            );
          } catch (err) {
            assert(err instanceof LayerRejectedError, `${what}: ${err}`);
          }
        }
      }
      const escaped = [...Deno.readDirSync("/etc")].filter((e) => e.name.startsWith(NAME));
      assertEquals(escaped.map((e) => e.name), [], "written into the host's /etc");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
