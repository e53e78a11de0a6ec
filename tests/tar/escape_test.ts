/**
 * The fuzzer, the libarchive corpus and layers aimed at the host's files, run where a write anywhere on the host shows: in a
 * private mount namespace whose / is an overlay with a fresh upper layer (scripts/escape-check.sh).
 * Their own checks look at canaries beside the target; this one looks at every path on the
 * root filesystem. Only their scratch directory (TMPDIR) and Deno's cache may change. The suite
 * runs them here only (scripts/test.sh leaves them out of the main host run).
 */
import { assert, assertEquals } from "../helpers/assert.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const SCRATCH = "tmp/thinimage-escape-scratch";

Deno.test("fuzzer and corpus in a private mount namespace: nothing written outside their scratch", async () => {
  const denoDir = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
        .output()).stdout,
    ),
  ).denoDir.replace(/^\//, "");
  const out = await new Deno.Command("/usr/bin/bash", {
    args: [
      `${REPO}/scripts/escape-check.sh`,
      "tests/tar/fuzz_test.ts",
      "tests/tar/corpus_test.ts",
      "tests/tar/hostile_host_test.ts",
    ],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rc = /^RC (\d+)$/m.exec(text)?.[1];
  assert(
    rc !== undefined,
    `escape-check.sh did not finish: ${new TextDecoder().decode(out.stderr)}`,
  );
  const tests = text.split("\n").filter((l) => !l.startsWith("UPPER ")).join("\n");
  assertEquals(rc, "0", `the fuzzer or the corpus failed in the namespace:\n${tests}`);
  const allowed = [SCRATCH, denoDir];
  const outside = [...text.matchAll(/^UPPER (\S) \.\/(.*)$/gm)].filter(([, type, path]) => {
    if (allowed.some((a) => path === a || path.startsWith(`${a}/`))) return false;
    // Directories above an allowed path are copied up when something is made inside them.
    return !(type === "d" && allowed.some((a) => a.startsWith(`${path}/`)));
  }).map(([, type, path]) =>
    `${type === "c" ? "removed" : type === "d" ? "dir" : "wrote"} /${path}`
  );
  assertEquals(outside, [], "written outside the scratch directory");
});
