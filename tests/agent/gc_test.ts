// gc forgets old run history (the part of gc that needs no device): through the agent, and
// through the CLI as cron runs it.
import { assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { openAgent } from "../../src/agent/runtime.ts";
import { collectGarbage, KEEP_RUNS_PER_RESOURCE } from "../../src/agent/gc.ts";
import { Logger } from "../../src/cli/log.ts";
import { SqliteRunStore } from "../../src/store/runs.ts";

const DAY = 86_400_000;
const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

/** A state directory whose history holds `n` finished `pull` runs of one image, a day apart. */
async function withHistory(n: number, now: number) {
  const stateDir = await Deno.makeTempDir({ prefix: "thinimage-gc-test-" });
  const agent = await openAgent({
    stateDir,
    log: new Logger({ level: "error", format: "text", write: () => {} }),
    source: {},
    offline: true,
  });
  const runs = new SqliteRunStore(agent.store);
  for (let i = 0; i < n; i++) {
    const at = now - (n - i) * DAY;
    const id = `run-${i}`;
    runs.createOrGetActive(
      {
        id,
        machine: "pull",
        resourceId: "golang",
        request: "{}",
        state: "resolve",
        owner: "test",
        leaseUntil: at + 1000,
      },
      { kind: "start" },
      at,
    );
    runs.record(id, "test", { status: "done", owner: null }, { kind: "finish" }, at + 1);
  }
  return { stateDir, agent, runs };
}

Deno.test("gc forgets finished runs older than the cutoff, keeping the newest per resource; a dry run only counts", async () => {
  const now = Date.now();
  const { stateDir, agent, runs } = await withHistory(10, now);
  try {
    // Ten runs, 10..1 days old: a 7-day cutoff forgets the three older than 7 days.
    const dry = await collectGarbage(agent, { dryRun: true, historyDays: 7, now });
    assertEquals(dry.runs, 3);
    assertEquals(runs.list({ limit: 100 }).length, 10);
    const done = await collectGarbage(agent, { dryRun: false, historyDays: 7, now });
    assertEquals(done.runs, 3);
    assertEquals(runs.list({ limit: 100 }).map((r) => r.id).sort(), [
      "run-3",
      "run-4",
      "run-5",
      "run-6",
      "run-7",
      "run-8",
      "run-9",
    ]);
    // --history-days 0: only the newest few of the resource stay, however recent the rest.
    await collectGarbage(agent, { dryRun: false, historyDays: 0, now });
    assertEquals(runs.list({ limit: 100 }).length, KEEP_RUNS_PER_RESOURCE);
  } finally {
    agent.close();
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("gc --history-days refuses what is not a whole number of days (exit 2)", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "thinimage-gc-cli-test-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "--state-dir", stateDir, "gc", "--history-days", "a week"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 2);
    assertStringIncludes(new TextDecoder().decode(out.stderr), "--history-days");
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});
