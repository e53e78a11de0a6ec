// deno-lint-ignore-file require-await -- transitions are async by type; most test ones have nothing to await
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../helpers/assert.ts";
import { engineOn, FakeLiveness, gate, tempStore } from "./helpers.ts";
import { MemoryRunStore } from "../../src/engine/memory_store.ts";
import { machine } from "../../src/engine/machine.ts";
import {
  CorruptRunError,
  permanent,
  RunFailedError,
  RunInterruptedError,
} from "../../src/engine/errors.ts";
import { ExitCode, InvalidInputError, ThinimageError } from "../../src/errors.ts";

interface Req {
  n: number;
}
interface Res {
  trail: string[];
  total: number;
}

const ev = (runs: { events(id: string): { kind: string; state: string | null }[] }, id: string) =>
  runs.events(id).map((e) => `${e.kind}${e.state ? ":" + e.state : ""}`);

Deno.test("transitions run in order and hand their typed response to the next", async () => {
  const runs = new MemoryRunStore();
  const seen: string[] = [];
  const m = machine<Req, Res>("order")
    .start("one", async ({ request, response }) => {
      seen.push(`one:${response === undefined}`);
      return { trail: ["one"], total: request.n };
    })
    .to("two", async ({ response }) => {
      seen.push(`two:${response!.trail.join(",")}`);
      return { trail: [...response!.trail, "two"], total: response!.total * 2 };
    })
    .to("three", async ({ response, state, attempt, restarted }) => {
      seen.push(`${state}:${attempt}:${restarted}`);
      return { trail: [...response!.trail, "three"], total: response!.total + 1 };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "res-1", { n: 20 });
  assertEquals(await run.wait(), { trail: ["one", "two", "three"], total: 41 });
  assertEquals(seen, ["one:true", "two:one", "three:1:false"]);
  assertEquals(ev(runs, run.id), [
    "start:one",
    "begin:one",
    "complete:one",
    "begin:two",
    "complete:two",
    "begin:three",
    "complete:three",
    "finish:done",
  ]);
  const rec = run.record()!;
  assertEquals([rec.status, rec.state, rec.owner, rec.leaseUntil], ["done", "done", null, null]);
});

Deno.test("the compiler rejects a transition that returns the wrong type", () => {
  // Never run: deno check (part of `deno task check` and of `deno test`) is the assertion.
  const build = () =>
    machine<Req, Res>("typed")
      // @ts-expect-error: a number is not a Res
      .start("one", async () => 42)
      // @ts-expect-error: a state name cannot repeat
      .to("one", async () => ({ trail: [], total: 0 }))
      .end("done");
  assert(typeof build === "function");
});

Deno.test("single flight: a second start gets the active run back", async () => {
  const runs = new MemoryRunStore();
  let calls = 0;
  const g = gate();
  const m = machine<Req, Res>("single")
    .start("only", async () => {
      calls++;
      await g.promise;
      return { trail: ["only"], total: calls };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const a = await engine.start(m, "same", { n: 1 });
  const b = await engine.start(m, "same", { n: 2 });
  const other = await engine.start(m, "other", { n: 3 });
  assertEquals([a.created, b.created, b.id === a.id, other.id !== a.id], [
    true,
    false,
    true,
    true,
  ]);
  // Another live process (another engine and owner on the same database) also gets it back.
  const elsewhere = engineOn(runs, new FakeLiveness(), { owner: "test/0/2/2" }).register(m);
  const c = await elsewhere.start(m, "same", { n: 4 });
  assertEquals([c.id, c.created, c.local], [a.id, false, false]);
  g.open();
  const [ra, rb, rc] = await Promise.all([a.wait(), b.wait(), c.wait()]);
  assertEquals(rb, ra);
  assertEquals(rc, ra);
  await other.wait();
  assertEquals(calls, 2); // "same" once, "other" once
  // Once finished, a new start makes a new run.
  const d = await engine.start(m, "same", { n: 5 });
  assert(d.created && d.id !== a.id);
  await d.wait();
});

Deno.test("retryable errors are retried with growing, jittered delays, then give up", async () => {
  const runs = new MemoryRunStore();
  const attempts: number[] = [];
  const m = machine<Req, Res>("flaky", {
    retry: { maxAttempts: 4, initialDelayMs: 4, factor: 2, jitter: 0.5, maxDelayMs: 10 },
  })
    .start("try", async ({ attempt }) => {
      attempts.push(attempt);
      throw new Error(`flake ${attempt}`);
    })
    .end("done");
  // random() = 1/2 with jitter 1/2 takes a quarter off each delay.
  const engine = engineOn(runs, new FakeLiveness(), { random: () => 0.5 }).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  const err = await assertRejects(() => run.wait(), RunFailedError, "gave up after 4 attempts");
  assertStringIncludes(err.message, "flake 4");
  assertEquals(attempts, [1, 2, 3, 4]);
  const delays = runs.events(run.id).filter((e) => e.kind === "retry")
    .map((e) => JSON.parse(e.data!).delayMs);
  assertEquals(delays, [3, 6, 8]); // 4, 8, 16 capped at 10; each less a quarter
  assertEquals(run.record()!.status, "failed");
  assertEquals(run.record()!.attempts, 4);
});

Deno.test("retries are bounded by time too", async () => {
  const runs = new MemoryRunStore();
  let clock = 1_000_000;
  let calls = 0;
  const m = machine<Req, Res>("slow-flaky", {
    retry: { maxAttempts: 100, maxElapsedMs: 1_000, initialDelayMs: 1, jitter: 0, factor: 1 },
  })
    .start("try", async () => {
      calls++;
      clock += 400; // each attempt "takes" 400 ms on the engine's clock
      throw new Error("still down");
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness(), { now: () => clock }).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  await assertRejects(() => run.wait(), RunFailedError, "(limit 1000 ms)");
  assertEquals(calls, 3); // 400, 800, then 1200 ms > 1000
});

Deno.test("a retry after a failure succeeds and the run goes on", async () => {
  const runs = new MemoryRunStore();
  const m = machine<Req, Res>("recover", { retry: { initialDelayMs: 1 } })
    .start("try", async ({ attempt, restarted }) => {
      if (attempt < 3) throw new Error("not yet");
      return { trail: [`attempt ${attempt} restarted ${restarted}`], total: 0 };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  assertEquals((await run.wait()).trail, ["attempt 3 restarted false"]);
  assertEquals(ev(runs, run.id).filter((k) => k.startsWith("retry")).length, 2);
  assertEquals(run.record()!.lastError, null);
});

Deno.test("a permanent error halts at once; finalizers run with the error and the state", async () => {
  const runs = new MemoryRunStore();
  const ran: string[] = [];
  const finals: unknown[] = [];
  const m = machine<Req, Res>("halting")
    .start("one", async () => {
      ran.push("one");
      return { trail: ["one"], total: 1 };
    })
    .to("two", async () => {
      ran.push("two");
      throw permanent(new Error("no such image"));
    })
    .to("three", async () => {
      ran.push("three");
      return { trail: [], total: 0 };
    })
    .end("done", {
      finalizers: [
        ({ status, state, error, response }) => {
          finals.push([status, state, (error as Error).message, response?.trail]);
        },
        () => {
          throw new Error("cleanup broke");
        },
        ({ status }) => void finals.push(`second finalizer still runs: ${status}`),
      ],
    });
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  const err = await assertRejects(() => run.wait(), RunFailedError);
  assertEquals(err.exitCode, ExitCode.Failure);
  assertEquals(err.message, "no such image", "the cause first, no run id in front");
  assertEquals(err.runs, [{ runId: run.id, machine: m.name, resource: "r", state: "two" }]);
  assertEquals(ran, ["one", "two"]);
  assertEquals(finals, [
    ["failed", "two", "no such image", ["one"]],
    "second finalizer still runs: failed",
  ]);
  assertEquals(ev(runs, run.id).slice(-5), [
    "begin:two",
    "error:two",
    "abort:two",
    "finalizer_error:two",
    "finish:two",
  ]);
  assertEquals([run.record()!.status, run.record()!.state], ["failed", "two"]);
});

Deno.test("invalid input is permanent without wrapping, and its exit code reaches the waiter", async () => {
  const runs = new MemoryRunStore();
  let calls = 0;
  const m = machine<Req, Res>("hostile")
    .start("check", async () => {
      calls++;
      throw new InvalidInputError("layer 1.tar: entry '../x' climbs out");
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  const err = await assertRejects(() => run.wait(), RunFailedError, "climbs out");
  assertEquals([err.exitCode, calls], [ExitCode.DataErr, 1]);
  // A waiter in another process rebuilds the same error from the store.
  const other = engineOn(runs, new FakeLiveness(), { owner: "test/0/9/9" }).register(m);
  const again = await assertRejects(
    () => other.handle(run.id)!.wait(),
    RunFailedError,
    "climbs out",
  );
  assertEquals(again.exitCode, ExitCode.DataErr);
});

Deno.test("finalizers run on success with the end state", async () => {
  const runs = new MemoryRunStore();
  const finals: unknown[] = [];
  const m = machine<Req, Res>("finals")
    .start("one", async ({ request }) => ({ trail: ["one"], total: request.n }))
    .end("ready", {
      finalizers: [
        ({ status, state, error, response }) => void finals.push([status, state, error, response]),
      ],
    });
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  await (await engine.start(m, "r", { n: 7 })).wait();
  assertEquals(finals, [["done", "ready", undefined, { trail: ["one"], total: 7 }]]);
});

Deno.test("a transition that overruns its timeout is aborted and retried, then fails", async () => {
  const runs = new MemoryRunStore();
  const aborted: string[] = [];
  const m = machine<Req, Res>("stuck", { retry: { maxAttempts: 2, initialDelayMs: 1 } })
    .start("hang", ({ signal, attempt }) =>
      new Promise<Res>((_, reject) => {
        signal.addEventListener("abort", () => {
          aborted.push(`${attempt}:${(signal.reason as Error).name}`);
          reject(signal.reason);
        });
      }), { timeoutMs: 20 })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  await assertRejects(() => run.wait(), RunFailedError, "timed out after 20 ms");
  assertEquals(aborted, ["1:TransitionTimeoutError", "2:TransitionTimeoutError"]);
  const errors = runs.events(run.id).filter((e) => e.kind === "error").map((e) =>
    JSON.parse(e.data!)
  );
  assertEquals(errors.map((e) => [e.timedOut, e.permanent]), [[true, false], [true, false]]);
});

Deno.test("cancel through AbortSignal leaves the run resumable; a new start resumes it", async () => {
  const runs = new MemoryRunStore();
  const ran: string[] = [];
  const inTwo = gate();
  const m = machine<Req, Res>("cancellable")
    .start("one", async () => {
      ran.push("one");
      return { trail: ["one"], total: 1 };
    })
    .to("two", ({ signal, attempt, restarted, response }) => {
      ran.push(`two attempt=${attempt} restarted=${restarted}`);
      if (attempt > 1) return Promise.resolve({ trail: [...response!.trail, "two"], total: 2 });
      inTwo.open();
      return new Promise<Res>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      );
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const ctl = new AbortController();
  const run = await engine.start(m, "r", { n: 1 }, { signal: ctl.signal });
  await inTwo.promise;
  ctl.abort(new Error("SIGINT"));
  const err = await assertRejects(() => run.wait(), RunInterruptedError, "interrupted in 'two'");
  assertEquals(err.exitCode, ExitCode.TempFail);
  const rec = run.record()!;
  assertEquals([rec.status, rec.state, rec.owner], ["active", "two", null]);
  assertEquals(ev(runs, run.id).at(-1), "cancel:two");

  const again = await engine.start(m, "r", { n: 1 });
  assertEquals([again.id, again.created], [run.id, false]);
  assertEquals((await again.wait()).trail, ["one", "two"]);
  assertEquals(ran, ["one", "two attempt=1 restarted=false", "two attempt=2 restarted=true"]);
});

Deno.test("a request JSON cannot keep is refused before the run starts", async () => {
  const runs = new MemoryRunStore();
  const m = machine<{ at: Date }, Res>("dates")
    .start("one", async () => ({ trail: [], total: 0 }))
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  await assertRejects(
    () => engine.start(m, "r", { at: new Date() }),
    ThinimageError,
    "request.at is a Date",
  );
  assertEquals(runs.list({ limit: 10 }), []);
});

Deno.test("resumeAll: two runs of one machine resume independently (FSMv2 flaw 1)", async () => {
  const runs = new MemoryRunStore();
  const ran: string[] = [];
  const step =
    (s: string) => async ({ resourceId, response }: { resourceId: string; response?: Res }) => {
      ran.push(`${resourceId}:${s}`);
      return { trail: [...(response?.trail ?? []), s], total: 0 };
    };
  const m = machine<Req, Res>("pair").start("a", step("a")).to("b", step("b")).to("c", step("c"))
    .end("done");
  const live = new FakeLiveness();
  // A dead process left r1 after "a" and r2 after "b".
  const ghost = "test/0/66/66";
  live.dead.add(ghost);
  const leave = (res: string, completed: string[]) => {
    const { run } = runs.createOrGetActive(
      {
        id: crypto.randomUUID(),
        machine: "pair",
        resourceId: res,
        request: '{"n":1}',
        state: "a",
        owner: ghost,
        leaseUntil: 0,
      },
      { kind: "start", state: "a" },
      1,
    );
    const trail: string[] = [];
    for (const s of completed) {
      trail.push(s);
      runs.record(run.id, ghost, { state: s }, { kind: "begin", state: s, attempt: 1 }, 2);
      runs.record(run.id, ghost, { response: JSON.stringify({ trail, total: 0 }) }, {
        kind: "complete",
        state: s,
      }, 3);
    }
    return run.id;
  };
  const r2 = leave("r2", ["a", "b"]);
  const r1 = leave("r1", ["a"]);
  const engine = engineOn(runs, live).register(m);
  const report = await engine.resumeAll();
  assertEquals(report.resumed.map((h) => h.id).sort(), [r1, r2].sort());
  const results = await Promise.all(report.resumed.map((h) => h.wait()));
  assertEquals(results.map((r) => (r as Res).trail.join("")).sort(), ["abc", "abc"]);
  assertEquals(ran.sort(), ["r1:b", "r1:c", "r2:c"]);
});

Deno.test("resumeAll picks up only its own machines' runs (FSMv2 flaw 2) and only dead owners'", async () => {
  const runs = new MemoryRunStore();
  const ran: string[] = [];
  const mk = (name: string) =>
    machine<Req, Res>(name).start("a", async () => {
      ran.push(name);
      return { trail: [name], total: 0 };
    }).end("done");
  const first = mk("first");
  const second = mk("second");
  const live = new FakeLiveness();
  live.dead.add("ghost/0/1/1");
  const put = (machineName: string, res: string, owner: string) =>
    runs.createOrGetActive(
      {
        id: crypto.randomUUID(),
        machine: machineName,
        resourceId: res,
        request: '{"n":1}',
        state: "a",
        owner,
        leaseUntil: 0,
      },
      { kind: "start", state: "a" },
      1,
    ).run.id;
  const firstRun = put("first", "x", "ghost/0/1/1");
  const aliveRun = put("second", "y", "alive/0/2/2");
  const onlySecond = engineOn(runs, live).register(second);
  const report = await onlySecond.resumeAll();
  assertEquals([report.resumed.length, report.skipped], [0, [aliveRun]]);
  assertEquals(runs.get(firstRun)!.status, "active");

  const both = engineOn(runs, live, { owner: "test/0/3/3" }).register(first).register(second);
  const r2 = await both.resumeAll();
  assertEquals(r2.resumed.map((h) => h.id), [firstRun]);
  await r2.resumed[0].wait();
  assertEquals(ran, ["first"]);
});

Deno.test("one corrupt run does not stop the others from resuming (FSMv2 flaw 5)", async () => {
  // On SQLite: the damage is written past the store, as a broken database file would hold it.
  const t = tempStore();
  try {
    const m = machine<Req, Res>("sturdy")
      .start("a", async ({ request }) => ({ trail: ["a"], total: request.n }))
      .end("done");
    const live = new FakeLiveness();
    live.dead.add("ghost/0/1/1");
    const ids = ["r1", "r2", "r3", "r4"].map((res, i) =>
      t.runs.createOrGetActive(
        {
          id: `id-${i}`,
          machine: "sturdy",
          resourceId: res,
          request: `{"n":${i}}`,
          state: "a",
          owner: "ghost/0/1/1",
          leaseUntil: 0,
        },
        { kind: "start", state: "a" },
        i,
      ).run.id
    );
    t.store.db.prepare("UPDATE runs SET request = '{not json' WHERE id = ?").run(ids[1]);
    t.store.db.prepare("UPDATE runs SET state = 'nowhere' WHERE id = ?").run(ids[2]);
    const engine = engineOn(t.runs, live).register(m);
    const report = await engine.resumeAll();
    assertEquals(report.resumed.map((h) => h.id), [ids[0], ids[3]]);
    assertEquals(report.failed.map((f) => f.runId), [ids[1], ids[2]]);
    assert(report.failed.every((f) => f.error instanceof CorruptRunError));
    assertStringIncludes(String(report.failed[0].error), "request is not valid JSON");
    assertStringIncludes(String(report.failed[1].error), "state 'nowhere'");
    assertEquals(
      (await Promise.all(report.resumed.map((h) => h.wait()))).map((r) => (r as Res).total),
      [0, 3],
    );
    assertEquals([t.runs.get(ids[1])!.status, t.runs.get(ids[2])!.status], ["failed", "failed"]);
    // The corrupt run no longer blocks its resource: a new start makes a fresh run.
    const fresh = await engine.start(m, "r2", { n: 9 });
    assert(fresh.created);
    assertEquals((await fresh.wait()).total, 9);
  } finally {
    t.close();
  }
});

Deno.test("an owner liveness cannot judge is taken over only once its lease lapses", async () => {
  const runs = new MemoryRunStore();
  let clock = 10_000;
  const m = machine<Req, Res>("leased").start("a", async () => ({ trail: ["a"], total: 0 })).end(
    "done",
  );
  const live = new FakeLiveness();
  live.unknown.add("far/0/1/1");
  const id = runs.createOrGetActive(
    {
      id: "leased-1",
      machine: "leased",
      resourceId: "r",
      request: '{"n":1}',
      state: "a",
      owner: "far/0/1/1",
      leaseUntil: 20_000,
    },
    { kind: "start", state: "a" },
    1,
  ).run.id;
  const engine = engineOn(runs, live, { now: () => clock }).register(m);
  assertEquals((await engine.resumeAll()).skipped, [id]);
  clock = 20_001;
  const report = await engine.resumeAll();
  assertEquals(report.resumed.map((h) => h.id), [id]);
  await report.resumed[0].wait();
});

Deno.test("a waiter takes over a run whose owner died while it waited", async () => {
  const runs = new MemoryRunStore();
  const m = machine<Req, Res>("orphan").start("a", async () => ({ trail: ["a"], total: 1 })).end(
    "done",
  );
  const live = new FakeLiveness();
  runs.createOrGetActive(
    {
      id: "orphan-1",
      machine: "orphan",
      resourceId: "r",
      request: '{"n":1}',
      state: "a",
      owner: "other/0/5/5",
      leaseUntil: 0,
    },
    { kind: "start", state: "a" },
    1,
  );
  const engine = engineOn(runs, live).register(m);
  const h = await engine.start(m, "r", { n: 1 });
  assertEquals([h.id, h.local], ["orphan-1", false]);
  const waiting = h.wait();
  live.dead.add("other/0/5/5"); // the owner dies while we poll
  assertEquals((await waiting).total, 1);
  assertEquals(runs.events("orphan-1").some((e) => e.kind === "resume"), true);
});

Deno.test("a run taken over elsewhere stops writing here (fencing)", async () => {
  const runs = new MemoryRunStore();
  const inA = gate();
  const release = gate();
  const m = machine<Req, Res>("fenced")
    .start("a", async () => {
      inA.open();
      await release.promise;
      return { trail: ["a by the first owner"], total: 0 };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  await inA.promise;
  // Another process judged us dead and took the run over.
  assert(runs.claim(run.id, "test/0/1/1", "thief/0/1/1", 1e15, { kind: "resume" }, 5));
  release.open();
  runs.record(
    run.id,
    "thief/0/1/1",
    { status: "done", owner: null, response: '{"trail":["thief"],"total":0}' },
    { kind: "finish" },
    6,
  );
  assertEquals((await run.wait()).trail, ["thief"]);
  assertEquals(runs.events(run.id).filter((e) => e.kind === "complete").length, 0);
});

Deno.test("a response JSON cannot keep halts the run instead of resuming empty (FSMv2 flaw 7)", async () => {
  const runs = new MemoryRunStore();
  let calls = 0;
  const m = machine<Req, { seen: Map<string, number> }>("lossy")
    .start("one", async () => {
      calls++;
      return { seen: new Map([["a", 1]]) };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness()).register(m);
  const run = await engine.start(m, "r", { n: 1 });
  await assertRejects(() => run.wait(), RunFailedError, "response of 'one'.seen is a Map");
  assertEquals(calls, 1);
});

Deno.test("the owner's lease is renewed while a transition runs", async () => {
  const runs = new MemoryRunStore();
  const leases: number[] = [];
  const m = machine<Req, Res>("long")
    .start("work", async ({ runId }) => {
      leases.push(runs.get(runId)!.leaseUntil!);
      // Ten renewal periods: the renewal timer (every 10 ms) fires before this one.
      await new Promise((r) => setTimeout(r, 100));
      leases.push(runs.get(runId)!.leaseUntil!);
      return { trail: [], total: 0 };
    })
    .end("done");
  const engine = engineOn(runs, new FakeLiveness(), { leaseMs: 30 }).register(m);
  await (await engine.start(m, "r", { n: 1 })).wait();
  assert(leases[1] > leases[0], `lease not renewed: ${leases}`);
});

Deno.test("a retry cut short by a crash after its error is not reported as restarted", async () => {
  const runs = new MemoryRunStore();
  const seen: string[] = [];
  const m = machine<Req, Res>("precise")
    .start("a", async ({ attempt, restarted }) => {
      seen.push(`${attempt}:${restarted}`);
      return { trail: ["a"], total: 0 };
    })
    .end("done");
  const live = new FakeLiveness();
  live.dead.add("ghost/1/1");
  const put = (id: string, res: string, tail: "error" | "begin") => {
    runs.createOrGetActive(
      {
        id,
        machine: "precise",
        resourceId: res,
        request: '{"n":1}',
        state: "a",
        owner: "ghost/1/1",
        leaseUntil: 0,
      },
      { kind: "start", state: "a" },
      1,
    );
    runs.record(id, "ghost/1/1", { attempts: 1 }, { kind: "begin", state: "a", attempt: 1 }, 2);
    if (tail === "error") {
      runs.record(id, "ghost/1/1", {}, { kind: "error", state: "a", attempt: 1 }, 3);
    }
  };
  put("ended-with-error", "r1", "error"); // died while waiting to retry
  put("cut-short", "r2", "begin"); // died in the middle of attempt 1
  const engine = engineOn(runs, live, {
    onEvent: () => {
      throw new Error("a broken observer");
    },
  }).register(m);
  const report = await engine.resumeAll();
  await Promise.all(report.resumed.map((h) => h.wait()));
  assertEquals(seen, ["2:false", "2:true"]);
});

Deno.test("a transition that keeps killing its process is given up after its attempts", async () => {
  const runs = new MemoryRunStore();
  let calls = 0;
  const finals: string[] = [];
  const m = machine<Req, Res>("crashloop", { retry: { maxAttempts: 3 } })
    .start("boom", async () => {
      calls++;
      return { trail: [], total: 0 };
    })
    .end("done", { finalizers: [({ status, state }) => void finals.push(`${status} ${state}`)] });
  const live = new FakeLiveness();
  live.dead.add("ghost/1/1");
  runs.createOrGetActive(
    {
      id: "loop",
      machine: "crashloop",
      resourceId: "r",
      request: '{"n":1}',
      state: "boom",
      owner: "ghost/1/1",
      leaseUntil: 0,
    },
    { kind: "start", state: "boom" },
    1,
  );
  runs.record("loop", "ghost/1/1", { attempts: 3 }, {
    kind: "begin",
    state: "boom",
    attempt: 3,
  }, 2);
  const engine = engineOn(runs, live).register(m);
  const [h] = (await engine.resumeAll()).resumed;
  await assertRejects(
    () => h.wait(),
    RunFailedError,
    "gave up after 3 attempts, the last cut short",
  );
  assertEquals([calls, finals], [0, ["failed boom"]]);
});
