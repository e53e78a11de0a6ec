/**
 * Crash safety, on a real kernel: SIGKILL at every transition boundary of activating three
 * images, and in the middle of a download and of a layer being applied; each time the next
 * run resumes, and in the end every activation matches its reference, SQLite agrees with the
 * kernel, and nothing leaked. Runs inside the VM only.
 */
import { assert, assertEquals } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";

const KILLED = 137; // 128 + SIGKILL, as the shell reports it; Deno reports signal SIGKILL

function killed(r: { code: number; signal: Deno.Signal | null }): boolean {
  return r.signal === "SIGKILL" || r.code === KILLED;
}

Deno.test("SIGKILL at every kind of transition boundary: each rerun resumes, and the end state is exact", async () => {
  const sc = await Scenario.create("1G");
  const ledger = `${sc.dir}.crash-ledger`;
  try {
    // Each rerun dies right after a kind of boundary (machine.state) it has not died at yet,
    // twice per kind, so that a chain made from the base device and one made from a parent
    // snapshot, and a second blob, are each interrupted too. The next process resumes.
    let kills = 0;
    for (let round = 0;; round++) {
      assert(round < 60, "activate made no progress in 60 rounds");
      const r = await sc.cli(["activate", "golang", "--json"], {
        THINIMAGE_TEST_CRASH_LEDGER: ledger,
        THINIMAGE_TEST_CRASH_PER_KIND: "2",
      });
      if (killed(r)) {
        kills++;
        console.log(`round ${round}: ${/crash point: (.*)/.exec(r.stderr)?.[1] ?? "killed"}`);
        continue;
      }
      assertEquals(r.code, 0, `activate after ${kills} kills: ${r.stderr}`);
      break;
    }
    const kinds = (await Deno.readTextFile(ledger)).split("\n").filter(Boolean);
    const expected = [
      "activate.pull",
      "activate.snapshot",
      "activate.activate",
      "pull.resolve",
      "pull.layers",
      "blob.download",
      "chain.snapshot",
      "chain.apply",
      "chain.seal",
    ];
    for (const k of expected) assert(kinds.includes(k), `never killed after ${k}`);
    assertEquals(kinds.length, kills);
    await sc.assertActivationMatches("golang", "golang");
    await sc.assertConsistent();
    assertEquals(
      await sc.query("SELECT machine, resource_id FROM runs WHERE status = 'active'"),
      [],
    );
    // Each blob downloaded once, whatever the kills.
    const blobs = await sc.query("SELECT sha256 FROM blobs");
    const got =
      (await sc.query("SELECT response FROM runs WHERE machine = 'blob' AND status = 'done'"))
        .filter((r) => JSON.parse(String(r.response)).downloaded);
    assertEquals(got.length, blobs.length);
  } finally {
    await Deno.remove(ledger).catch(() => {});
    await sc.teardown();
  }
});

Deno.test("SIGKILL in the middle of a download and of an apply: the rerun finishes cleanly", async () => {
  const sc = await Scenario.create("1G");
  try {
    // node's layer 4 is over 1 MB, so 64 KiB is mid-download; python's only new layer is about
    // 60 KB, so its apply is stopped at its first progress report.
    for (const crash of ["download:65536", "apply:1"]) {
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
