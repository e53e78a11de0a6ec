// Calls through libc whose arguments the bindings lay out themselves: thread scheduling (what
// the hash worker's priority rests on, and the id it reports, bound on its own in that thread),
// and the 64-bit times and offsets of the file writer's calls.
import { assert, assertEquals } from "../helpers/assert.ts";
import { AT, libc, O } from "../../src/host/libc.ts";

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

Deno.test("futimes and utimensat: whole, fractional, negative and far times, to the nanosecond", () => {
  const c = libc();
  const dir = Deno.makeTempDirSync();
  try {
    const d = c.open(dir, O.RDONLY | O.DIRECTORY);
    const fd = c.openat(d, "f", O.WRONLY | O.CREAT, 0o644);
    try {
      const cases: [number, number | undefined, number, number][] = [
        // seconds, nsec, expected seconds, expected nanoseconds
        [1_700_000_000, undefined, 1_700_000_000, 0],
        [1_700_000_000, 123_456_789, 1_700_000_000, 123_456_789],
        [1_700_000_000.25, undefined, 1_700_000_000, 250_000_000],
        // Rounds to the next second, never to 1e9 ns (EINVAL).
        [1.9999999999, undefined, 2, 0],
        [-1, undefined, -1, 0],
        [-1.5, undefined, -2, 500_000_000],
        [2 ** 33 + 7, undefined, 2 ** 33 + 7, 0], // past 32 bits (year 2242)
        [0, undefined, 0, 0],
      ];
      for (const [s, ns, es, ens] of cases) {
        c.futimes(fd, s, ns);
        const st = c.lstatat(d, "f");
        assertEquals([st.mtimeSec, st.mtimeNsec], [es, ens], `futimes(${s}, ${ns})`);
        if (ns === undefined) {
          c.utimensat(d, "f", s, AT.SYMLINK_NOFOLLOW);
          const st2 = c.lstatat(d, "f");
          assertEquals([st2.mtimeSec, st2.mtimeNsec], [es, ens], `utimensat(${s})`);
        }
      }
    } finally {
      c.close(fd);
      c.close(d);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("copyRange: from offsets past 4 GiB, and across the 4 GiB boundary", () => {
  const c = libc();
  const dir = Deno.makeTempDirSync();
  try {
    // A sparse file with marks at and around 4 GiB and 8 GiB (no blocks written between).
    const marks: [number, string][] = [[2 ** 32 - 3, "abcdef"], [2 ** 33 + 5, "xyz"]];
    {
      using f = Deno.openSync(`${dir}/src`, { write: true, create: true });
      for (const [at, text] of marks) {
        f.seekSync(at, Deno.SeekMode.Start);
        f.writeSync(new TextEncoder().encode(text));
      }
    }
    const src = c.open(`${dir}/src`, O.RDONLY);
    const d = c.open(dir, O.RDONLY | O.DIRECTORY);
    try {
      for (const [at, text] of marks) {
        const dst = c.openat(d, "dst", O.WRONLY | O.CREAT | O.TRUNC, 0o644);
        try {
          c.copyRange(src, at, dst, text.length);
        } finally {
          c.close(dst);
        }
        assertEquals(Deno.readTextFileSync(`${dir}/dst`), text, `at ${at}`);
      }
    } finally {
      c.close(src);
      c.close(d);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
