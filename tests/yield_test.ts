import { assert, assertEquals } from "./helpers/assert.ts";
import { YIELD_INTERVAL_MS, yieldToEventLoop } from "../src/yield.ts";

/** Spin for `ms` of wall time: synchronous work, as a tar pass does between awaits. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* work */ }
}

Deno.test("yieldToEventLoop lets a due timer run in a loop of synchronous work", async () => {
  let fired = false;
  const timer = setTimeout(() => fired = true, 0);
  try {
    // Resolved promises alone (microtasks) would never let the timer's macrotask run.
    for (let i = 0; i < 10 && !fired; i++) {
      busy(YIELD_INTERVAL_MS + 1);
      await yieldToEventLoop();
    }
    assert(fired, "the timer never ran: yieldToEventLoop did not turn the event loop");
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("yieldToEventLoop lets an I/O callback run in a loop of synchronous work", async () => {
  // An op completed by another thread (a file read on Deno's blocking pool), not a timer.
  let done = false;
  const read = Deno.readTextFile(new URL(import.meta.url)).then(() => done = true);
  for (let i = 0; i < 20 && !done; i++) {
    busy(YIELD_INTERVAL_MS + 1);
    await yieldToEventLoop();
  }
  assert(done, "the read's callback never ran");
  await read;
});

Deno.test("yieldToEventLoop throws the signal's reason once it aborted, and only then", async () => {
  const ac = new AbortController();
  await yieldToEventLoop(ac.signal);
  const reason = new Error("stop");
  // Aborted by a macrotask, as a signal listener would.
  setTimeout(() => ac.abort(reason), 0);
  let thrown: unknown;
  for (let i = 0; i < 10 && thrown === undefined; i++) {
    busy(YIELD_INTERVAL_MS + 1);
    try {
      await yieldToEventLoop(ac.signal);
    } catch (err) {
      thrown = err;
    }
  }
  assertEquals(thrown, reason);
});

Deno.test("yieldToEventLoop leaves nothing open that keeps the process alive", async () => {
  // The test sanitizers fail a test that leaks ops or resources: many turns in a row here,
  // then a process that must exit by itself after its last turn.
  for (let i = 0; i < 50; i++) {
    busy(YIELD_INTERVAL_MS + 1);
    await yieldToEventLoop();
  }
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { yieldToEventLoop } from ${
        JSON.stringify(new URL("../src/yield.ts", import.meta.url).href)
      };
       const end = performance.now() + 100;
       while (performance.now() < end) await yieldToEventLoop();`,
    ],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000), // killed if it hangs: that is the failure
  }).output();
  assertEquals(new TextDecoder().decode(child.stderr), "");
  assert(child.success, "a script whose last act was a turn did not exit by itself");
});
