// Thread scheduling through libc: what the hash worker's priority rests on, and the id it
// reports (bound on its own in that thread).
import { assert, assertEquals } from "../helpers/assert.ts";
import { libc } from "../../src/host/libc.ts";

/** The scheduling policy of the calling thread (field 41 of its stat line). */
function policy(): number {
  const stat = Deno.readTextFileSync("/proc/thread-self/stat");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[41 - 3]);
}

Deno.test("idleThread: SCHED_IDLE on the thread named, and back to SCHED_OTHER", () => {
  const c = libc();
  const tid = c.gettid();
  assertEquals(policy(), 0);
  c.idleThread(tid, true);
  try {
    assertEquals(policy(), 5);
  } finally {
    c.idleThread(tid, false); // as root here: RLIMIT_NICE does not apply
  }
  assertEquals(policy(), 0);
});

Deno.test("threadId: the calling thread's id, where the full bindings were never loaded", async () => {
  // A worker: a thread of its own, with its own module instances (libc() not called there).
  const src = `import { threadId } from ${
    JSON.stringify(new URL("../../src/host/libc.ts", import.meta.url).href)
  };
    self.postMessage({ tid: threadId(), self: Deno.readLinkSync("/proc/thread-self") });`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  try {
    const got = await new Promise<{ tid: number; self: string }>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
    assertEquals(got.self, `${Deno.pid}/task/${got.tid}`);
    assert(got.tid !== libc().gettid());
  } finally {
    w.terminate();
  }
});
