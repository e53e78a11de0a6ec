// Thread scheduling through libc: what the hash worker's priority rests on.
import { assertEquals } from "../helpers/assert.ts";
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
