/**
 * The CLI frame, run as the real program in child processes: exit codes, `--json`, usage
 * errors, permission errors, and SIGINT leaving a run resumable.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../helpers/assert.ts";
import { runCli } from "../../src/cli/frame.ts";
import { openStore } from "../../src/store/db.ts";
import { DB_FILE } from "../../src/state_dir.ts";
import { NotServedError } from "../../src/daemon/protocol.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const SPIN = new URL("./fixtures/spin.ts", import.meta.url).pathname;
const dec = new TextDecoder();
// The permissions `deno task thinimage` grants that matter here.
const TASK_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=osRelease,hostname",
];

async function cli(args: string[], flags = TASK_FLAGS, script = MAIN) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "thinimage-cli-test-" });
}

Deno.test("--help lists the commands and exits 0; no command is a usage error (2)", async () => {
  const help = await cli(["--help"]);
  assertEquals(help.code, 0);
  assertStringIncludes(help.stdout, "history");
  assertStringIncludes(help.stdout, "exit codes");
  const none = await cli([]);
  assertEquals(none.code, 2);
  const version = await cli(["--version"]);
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  assertEquals([version.code, version.stdout], [0, `thinimage ${config.version}\n`]);
  const cmdHelp = await cli(["history", "--help"]);
  assertEquals(cmdHelp.code, 0);
  assertStringIncludes(cmdHelp.stdout, "usage: thinimage history");
});

Deno.test("usage errors exit 2 and say what was wrong", async () => {
  const dir = tempDir();
  try {
    const cases: [string[], string][] = [
      [["frobnicate"], "unknown command 'frobnicate'"],
      [["history", "a", "b"], "expected 0 to 1 argument(s), got 2"],
      [["history", "--bogus"], "error: thinimage history: unknown option '--bogus'"],
      [
        ["activate", "--pool", "-x", "golang"],
        "thinimage activate: option '--pool' argument is ambiguous",
      ],
      [
        ["activate", "--pool=-x", "golang"],
        `invalid pool name "-x" for --pool: it starts with '-'`,
      ],
      [["activate", "--", "-x"], `invalid image name "-x" for IMAGE: it starts with '-'`],
      [["activate", "golang", "--name", "../x"], `invalid activation name "../x" for --name`],
      [["pull", "Bad/Name"], `invalid image name "Bad/Name" for IMAGE`],
      [["deactivate", "--", "-rf"], `invalid activation name "-rf" for NAME`],
      [["pool", "status", "--pool", "a b"], `invalid pool name "a b" for --pool`],
      [["pool", "init", "--name", "mine"], "a pool made here is named thinimage-SOMETHING"],
      [["rm", "nothing-here"], "no image named 'nothing-here' here: see 'thinimage ls'"],
      [["history", "--quiet", "--verbose"], "--quiet and --verbose conflict"],
      [["history", "--limit", "0"], "--limit must be a whole number"],
      [["history", "--state-dir", ""], "--state-dir is empty"],
    ];
    for (const [args, message] of cases) {
      const r = await cli([...(args.includes("--state-dir") ? [] : ["--state-dir", dir]), ...args]);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assertStringIncludes(r.stderr, message);
      assert(!/^\s+at /m.test(r.stderr), `a stack trace leaked: ${r.stderr}`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--json prints exactly one JSON document on stdout, for results and for errors", async () => {
  const dir = tempDir();
  try {
    const ok = await cli(["history", "--json", "--state-dir", dir]);
    assertEquals(ok.code, 0);
    assertEquals(JSON.parse(ok.stdout).runs, []);
    const human = await cli(["history", "--state-dir", dir]);
    assertEquals(human.stdout, ""); // human output goes to stderr
    assertStringIncludes(human.stderr, "no runs recorded");
    const bad = await cli(["--json", "history", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--state-dir", dir]);
    assertEquals(bad.code, 65);
    const doc = JSON.parse(bad.stdout);
    assertEquals([doc.error.code, doc.error.kind], [65, "InvalidInputError"]);
    assertStringIncludes(doc.error.message, "no run 01ARZ3NDEKTSV4RRFFQ69G5FAV");
    const usage = await cli(["history", "x", "y", "--json", "--state-dir", dir]);
    assertEquals([usage.code, JSON.parse(usage.stdout).error.code], [2, 2]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a missing permission names the flag to add, without a stack trace", async () => {
  const dir = tempDir();
  try {
    openStore(`${dir}/${DB_FILE}`).close();
    // Reading the database without --allow-write fails on SQLite's WAL files.
    const r = await cli(["history", "--state-dir", dir], ["--allow-read", "--allow-env"]);
    assertEquals(r.code, 1, r.stderr);
    assertMatch(r.stderr, /missing permission: run with --allow-write/);
    assert(!/^\s+at /m.test(r.stderr), `a stack trace leaked: ${r.stderr}`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("SIGINT cancels the run cleanly (exit 75) and the next start resumes it", async () => {
  const dir = tempDir();
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...TASK_FLAGS, SPIN, "spin", "img", "--state-dir", dir, "--json"],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const output = child.output();
    let exited = false;
    output.finally(() => (exited = true));
    while (!exists(`${dir}/in-two`)) {
      if (exited) throw new Error(`spin exited early: ${dec.decode((await output).stderr)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill("SIGINT");
    const first = await output;
    const stderr = dec.decode(first.stderr);
    assertEquals(first.code, 75, stderr);
    assertStringIncludes(stderr, "SIGINT: stopping at the next safe point");
    assertStringIncludes(stderr, "interrupted in 'two'; it resumes on the next start");
    const err = JSON.parse(dec.decode(first.stdout)).error;
    assertEquals([err.code, err.details.state], [75, "two"]);

    const second = await cli(["spin", "img", "--state-dir", dir, "--json"], TASK_FLAGS, SPIN);
    assertEquals(second.code, 0, second.stderr);
    const res = JSON.parse(second.stdout);
    assertEquals([res.run, res.steps], [err.details.runId, ["one", "two"]]);

    const hist = await cli(["history", res.run, "--state-dir", dir, "--json"]);
    const kinds = JSON.parse(hist.stdout).runs[0].events.map((e: { kind: string }) => e.kind);
    assertEquals(kinds, [
      "start",
      "begin",
      "complete",
      "begin",
      "cancel",
      "resume",
      "begin",
      "complete",
      "finish",
    ]);
    const people = await cli(["history", res.run, "--state-dir", dir]);
    assertStringIncludes(people.stderr, "interrupted in 'two'");
    assertStringIncludes(people.stderr, "restarted: an earlier attempt was cut short");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("runCli in process: help goes to the given stdout, errors map to exit codes", async () => {
  let out = "";
  let err = "";
  const opts = {
    stdout: (t: string) => (out += t),
    stderr: (t: string) => (err += t),
    noRevoke: true,
    noSignals: true,
  };
  assertEquals(await runCli(["--help"], opts), 0);
  assertStringIncludes(out, "history");
  assertEquals(await runCli(["nope"], opts), 2);
  assertStringIncludes(err, "unknown command 'nope'");
});

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

Deno.test("daemon mode: only served commands, only for the daemon's state directory", async () => {
  const mine = tempDir();
  const other = tempDir();
  try {
    const out: string[] = [];
    const run = (argv: string[], envStateDir?: string) =>
      runCli(argv, {
        stdout: (t) => out.push(t),
        stderr: (t) => out.push(t),
        noRevoke: true,
        noSignals: true,
        daemon: { stateDir: mine, envStateDir },
      });
    const declined = async (argv: string[], envStateDir?: string) => {
      try {
        await run(argv, envStateDir);
      } catch (err) {
        assert(err instanceof NotServedError, String(err));
        return (err as Error).message;
      }
      throw new Error(`served: ${argv.join(" ")}`);
    };
    assertStringIncludes(await declined(["ls"]), "does not serve ls");
    assertStringIncludes(await declined(["--version"]), "not a command");
    assertStringIncludes(await declined(["activate", "x", "--help"]), "help");
    assertStringIncludes(await declined(["--state-dir", other, "activate", "x"]), other);
    assertStringIncludes(await declined(["activate", "x"], other), other);
    // The client's own THINIMAGE_STATE_DIR, spelled another way, is the daemon's directory.
    // With nothing here, the activation is then declined: the client would have to pull it.
    assertStringIncludes(await declined(["activate", "x"], `${mine}/.`), "not pulled here");
    assertEquals(out, [], "nothing printed for a declined command");
    // A usage error is the daemon's to report, as the client would have.
    assertEquals(await run(["--state-dir", mine, "activate", "-x"]), 2);
  } finally {
    Deno.removeSync(mine, { recursive: true });
    Deno.removeSync(other, { recursive: true });
  }
});
