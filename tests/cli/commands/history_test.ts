import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { runCli } from "../../../src/cli/frame.ts";
import { openStore } from "../../../src/store/db.ts";
import { DB_FILE } from "../../../src/state_dir.ts";
import { SqliteRunStore } from "../../../src/store/runs.ts";
import { Engine } from "../../../src/engine/engine.ts";
import { machine } from "../../../src/engine/machine.ts";
import { permanent } from "../../../src/engine/errors.ts";

/** A state dir with: a done pull of alpine, a failed pull of alpine, a pull of debian. */
async function seeded(): Promise<{ dir: string; ids: Record<string, string> }> {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-history-test-" });
  const store = openStore(`${dir}/${DB_FILE}`);
  const runs = new SqliteRunStore(store);
  let fail = false;
  const pull = machine<{ image: string }, { layers: number }>("pull", {
    retry: { maxAttempts: 2, initialDelayMs: 1 },
  })
    .start("resolve", ({ request }) => Promise.resolve({ layers: request.image.length }))
    .to("fetch", ({ attempt, response }) => {
      if (fail && attempt === 1) return Promise.reject(new Error("connection reset"));
      if (fail) return Promise.reject(permanent(new Error("images/alpine/2.tar: no such key")));
      return Promise.resolve(response!);
    })
    .end("ready");
  const engine = new Engine(runs, {
    owner: "test/1/1",
    liveness: { status: () => "alive" },
  }).register(pull);
  const ids: Record<string, string> = {};
  const go = async (key: string, image: string) => {
    const run = await engine.start(pull, image, { image });
    ids[key] = run.id;
    await run.wait().catch(() => {});
  };
  await go("done", "alpine");
  fail = true;
  await go("failed", "alpine");
  fail = false;
  await go("debian", "debian");
  store.close();
  return { dir, ids };
}

async function history(args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(["history", ...args], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    noRevoke: true,
    noSignals: true,
  });
  return { code, stdout, stderr };
}

Deno.test("history of one run tells its story in order, failure and retry included", async () => {
  const { dir, ids } = await seeded();
  try {
    const r = await history([ids.failed, "--state-dir", dir]);
    assertEquals([r.code, r.stdout], [0, ""]);
    const lines = r.stderr.trim().split("\n");
    assertStringIncludes(lines[0], `run ${ids.failed}: pull alpine, failed in 'fetch'`);
    assertStringIncludes(lines[0], "no such key");
    const kinds = lines.slice(1).map((l) => l.trim().split(/\s+/)[1]);
    assertEquals(kinds, [
      "start",
      "begin",
      "complete",
      "begin",
      "error",
      "retry",
      "begin",
      "error",
      "abort",
      "finish",
    ]);
    assertStringIncludes(r.stderr, "'fetch' (attempt 1): connection reset [will retry if allowed]");
    assertStringIncludes(r.stderr, "[permanent]");
    assertStringIncludes(r.stderr, "halted in 'fetch': images/alpine/2.tar: no such key");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("history RESOURCE lists that resource's runs newest first; no argument lists recent runs", async () => {
  const { dir, ids } = await seeded();
  try {
    const res = await history(["alpine", "--json", "--state-dir", dir]);
    const doc = JSON.parse(res.stdout);
    assertEquals(doc.runs.map((r: { id: string }) => r.id), [ids.failed, ids.done]);
    assert(doc.runs.every((r: { events?: unknown[] }) => Array.isArray(r.events)));
    assertEquals(doc.runs[0].lastError.message, "images/alpine/2.tar: no such key");
    assertEquals(doc.runs[1].response, { layers: 6 });

    const recent = await history(["--json", "--limit", "2", "--state-dir", dir]);
    const rdoc = JSON.parse(recent.stdout);
    assertEquals(rdoc.runs.map((r: { id: string }) => r.id), [ids.debian, ids.failed]);
    assertEquals(rdoc.runs[0].events, undefined);

    const people = await history(["--state-dir", dir]);
    assertEquals(people.stderr.trim().split("\n").length, 3);
    assertStringIncludes(people.stderr, `${ids.done}`);

    const none = await history(["ubuntu", "--state-dir", dir]);
    assertEquals(none.code, 0);
    assertStringIncludes(none.stderr, "no runs recorded for 'ubuntu'");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("history shows a corrupt record as raw text instead of failing", async () => {
  const { dir, ids } = await seeded();
  try {
    const store = openStore(`${dir}/${DB_FILE}`);
    store.db.prepare("UPDATE runs SET request = '{broken' WHERE id = ?").run(ids.debian);
    store.close();
    const r = await history([ids.debian, "--json", "--state-dir", dir]);
    assertEquals(r.code, 0);
    assertEquals(JSON.parse(r.stdout).runs[0].request, "{broken");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("history does not create a state directory that does not exist", async () => {
  const dir = `${Deno.makeTempDirSync({ prefix: "thinimage-history-test-" })}/missing`;
  const r = await history(["--state-dir", dir]);
  assertEquals(r.code, 0);
  assertStringIncludes(r.stderr, "no runs recorded");
  let made = true;
  try {
    Deno.statSync(dir);
  } catch {
    made = false;
  }
  assertEquals(made, false);
  Deno.removeSync(dir.slice(0, -"/missing".length), { recursive: true });
});
