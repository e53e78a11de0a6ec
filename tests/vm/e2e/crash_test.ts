/**
 * Crash safety, on a real kernel: SIGKILL at every transition boundary of activating three
 * images, and in the middle of a download and of a layer being applied; each time the next
 * run resumes, and in the end every activation matches its reference, SQLite agrees with the
 * kernel, and nothing leaked. Runs inside the VM only.
 */
import { assert, assertEquals } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";

// Every machine and transition kind is crossed by golang alone (blob, chain from the base
// device and from snapshots, pull, activate); each round is a process start, seconds under
// emulation, so the other images are left to the mid-step kills and the other tests.
const IMAGES = ["golang"];
const KILLED = 137; // 128 + SIGKILL, as the shell reports it; Deno reports signal SIGKILL

function killed(r: { code: number; signal: Deno.Signal | null }): boolean {
  return r.signal === "SIGKILL" || r.code === KILLED;
}

Deno.test("SIGKILL after every transition of an activation: each rerun resumes, and the end state is exact", async () => {
  const sc = await Scenario.create("1G");
  try {
    let kills = 0;
    for (const img of IMAGES) {
      // Each process completes one transition, records it, and dies: the next one resumes.
      for (let round = 0;; round++) {
        assert(round < 200, `activate ${img} made no progress in 200 rounds`);
        const r = await sc.cli(["activate", img, "--json"], {
          THINIMAGE_TEST_CRASH_AFTER_EVENTS: "1",
        });
        if (killed(r)) {
          kills++;
          continue;
        }
        assertEquals(r.code, 0, `activate ${img} after ${round} kills: ${r.stderr}`);
        break;
      }
    }
    console.log(`crash: ${kills} processes killed at transition boundaries`);
    // activate 3 + pull 4 + blob 5 + chain 3 x 5 transitions, less the last one (no kill after it).
    assert(kills >= 26, `only ${kills} boundaries were hit`);
    for (const img of IMAGES) await sc.assertActivationMatches(img, img);
    await sc.assertConsistent();
    const runs = await sc.query("SELECT machine, resource_id FROM runs WHERE status = 'active'");
    assertEquals(runs, [], "runs left active");
  } finally {
    await sc.teardown();
  }
});

Deno.test("SIGKILL in the middle of a download and of an apply: the rerun finishes cleanly", async () => {
  const sc = await Scenario.create("1G");
  try {
    for (const crash of ["download:65536", "apply:65536"]) {
      const img = crash.startsWith("download") ? "node" : "python";
      const r = await sc.cli(["activate", img, "--json"], { THINIMAGE_TEST_CRASH_IN: crash });
      assert(killed(r), `${crash}: the process was not killed (code ${r.code}): ${r.stderr}`);
      const again = await sc.cli(["activate", img, "--json"]);
      assertEquals(again.code, 0, `${crash}: ${again.stderr}`);
      await sc.assertActivationMatches(img, img);
      await sc.assertConsistent();
    }
  } finally {
    await sc.teardown();
  }
});
