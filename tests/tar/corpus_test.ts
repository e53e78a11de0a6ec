// The libarchive corpus (vendored under corpus/libarchive with its COPYING), with the contract in its
// README: every file is accepted or refused naming a rule, within bounded memory, never a crash
// or a write; accepted ones applied onto an empty directory create nothing outside it.
import { assert, assertEquals } from "../helpers/assert.ts";
import { snapshotTree } from "./tree.ts";
import { validateLayer } from "../../src/tar/validate.ts";
import { applyLayer } from "../../src/tar/apply.ts";
import { LayerRejectedError } from "../../src/tar/violation.ts";

const CORPUS = new URL("./corpus/libarchive/", import.meta.url).pathname;

/** libarchive itself treats these as fatal. */
const MUST_REFUSE: Record<string, string[]> = {
  "test_read_format_tar_V_negative_size.tar": ["size-negative", "header-checksum"],
  "test_read_format_tar_invalid_pax_size.tar": ["size-unparseable", "header-format"],
  "test_read_format_tar_pax_g_large.tar": ["pax-too-large"],
};

function corpusFiles(): string[] {
  const files = [...Deno.readDirSync(CORPUS)].map((e) => e.name).filter((n) => n.endsWith(".tar"));
  return files.sort();
}

Deno.test("corpus: present, with the files its README names", () => {
  const files = corpusFiles();
  assert(
    files.length >= 50,
    `expected the libarchive corpus at ${CORPUS}, found ${files.length} files`,
  );
  for (const f of Object.keys(MUST_REFUSE)) assert(files.includes(f), `${f} missing`);
});

Deno.test("corpus: every file is accepted or refused naming a rule; applying stays inside", async () => {
  const corpusBefore = snapshotTree(CORPUS, { mtimes: true });
  const base = Deno.makeTempDirSync({ prefix: "thinimage-corpus-test-" });
  const outcomes: Record<string, string> = {};
  for (const f of corpusFiles()) {
    try {
      await validateLayer(CORPUS + f);
      outcomes[f] = "accepted";
    } catch (err) {
      assert(err instanceof LayerRejectedError, `${f}: crashed with ${err}`);
      assert(
        err.violations.length > 0 &&
          err.violations.every((v) => /^[a-z0-9-]+$/.test(v.rule) && v.message),
      );
      outcomes[f] = err.violations[0].rule;
    }
    if (MUST_REFUSE[f]) {
      assert(
        MUST_REFUSE[f].includes(outcomes[f]),
        `${f}: expected ${MUST_REFUSE[f]}, got ${outcomes[f]}`,
      );
    }
    if (outcomes[f] === "accepted") {
      const root = `${base}/${f}.d`;
      Deno.mkdirSync(root);
      await applyLayer(CORPUS + f, root);
    }
  }
  // Applying created nothing beside the per-file roots.
  assertEquals(
    [...Deno.readDirSync(base)].map((e) => e.name).sort(),
    Object.entries(outcomes).filter(([, o]) => o === "accepted").map(([f]) => `${f}.d`).sort(),
  );
  assertEquals(snapshotTree(CORPUS, { mtimes: true }), corpusBefore, "the corpus was not modified");
  // Sparse files of every form are refused as sparse (not silently read as plain files).
  for (const [f, o] of Object.entries(outcomes)) {
    if (/sparse/.test(f)) assertEquals(o, "sparse", f);
  }
  Deno.removeSync(base, { recursive: true });
});

Deno.test("corpus: validation in a process of its own peaks under 256 MiB, no file hangs", async () => {
  // Memory stays bounded even with the 8 MB pax attribute and the 4 GiB global header. The
  // timeout only turns a hang into a failure; durations are reported, not asserted.
  const probe = new URL("./corpus_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "--allow-all", probe, ...corpusFiles().map((f) => CORPUS + f)],
    stdout: "piped",
    stderr: "inherit",
    signal: AbortSignal.timeout(120_000),
  }).output();
  assertEquals(out.code, 0);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  const { peakKiB } = lines.pop();
  assertEquals(lines.length, corpusFiles().length);
  for (const l of lines) assert(!l.outcome.startsWith("crash"), `${l.file}: ${l.outcome}`);
  assert(peakKiB < 256 * 1024, `peak RSS ${peakKiB} KiB`);
  console.log(
    `corpus: peak RSS ${peakKiB} KiB, slowest file ${Math.max(...lines.map((l) => l.ms))} ms`,
  );
});
