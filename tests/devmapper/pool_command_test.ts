// The pool and status commands' argument handling, in process (no device-mapper needed).
import { assert, assertEquals } from "../helpers/assert.ts";
import { runCli } from "../../src/cli/frame.ts";

async function cli(...argv: string[]) {
  let out = "";
  let err = "";
  const code = await runCli(argv, {
    stdout: (t) => out += t,
    stderr: (t) => err += t,
    noRevoke: true,
    noSignals: true,
  });
  return { code, out, err };
}

Deno.test("pool: a wrong command line is a usage error (2) naming what was wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string[], string][] = [
      [["pool"], "expected 1 argument"],
      [["pool", "bogus"], "unknown subcommand 'bogus'"],
      [["pool", "init", "--data-size", "2X"], "--data-size '2X'"],
      [["pool", "init", "--block-size", "-4K"], "--block-size"],
      [["pool", "status", "--data-size", "1G"], "pool status takes only --pool"],
      [["pool", "init", "--pool", "pool", "--name", "thinimage-x"], "adopts a pool as it is"],
    ];
    for (const [argv, message] of cases) {
      const r = await cli("--state-dir", dir, ...argv);
      assertEquals(r.code, 2, argv.join(" "));
      assert(r.err.includes(message), `${argv.join(" ")}: ${r.err}`);
    }
    // A name outside the project's prefix is the command line's mistake (2), and says what to
    // run to adopt a pool of that name instead.
    const named = await cli("--state-dir", dir, "pool", "init", "--name", "mine");
    assertEquals(named.code, 2);
    assert(named.err.includes("a pool made here is named thinimage-SOMETHING"), named.err);
    assert(named.err.includes("'thinimage pool init --pool mine'"), named.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status with no pool yet: one JSON document, exit 0", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await cli("--state-dir", dir, "--json", "status");
    assertEquals(r.code, 0, r.err);
    assertEquals(JSON.parse(r.out), { pools: [], ok: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
