/**
 * Crash safety, on a real kernel: SIGKILL at every transition boundary of activating three
 * images, and in the middle of a download and of a layer being applied; each time the next
 * run resumes, and in the end every activation matches its reference, SQLite agrees with the
 * kernel, and nothing leaked. Runs inside the VM only.
 */
import { assert, assertEquals } from "../../helpers/assert.ts";
import { Scenario } from "./helpers.ts";
import { type FaultProxy, startFaultProxy } from "../../../scripts/fault-proxy.ts";

/** Anonymous requests: the proxy's port changes the Host header a signature would cover. */
const ANON = { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };

/** A pass-through proxy in front of the scenario's S3 server, where downloads are counted. */
function countingProxy(sc: Scenario): FaultProxy {
  const proxy = startFaultProxy({ upstream: sc.s3.endpoint });
  sc.extraNetHosts.push(new URL(proxy.url).host);
  return proxy;
}

/**
 * Counted where the bytes flow (the proxy), not by what the runs recorded: every layer blob of
 * `images` was asked for, and none was asked for again once it was stored (its row's time).
 * Before that, a process killed with the body in flight may leave fewer bytes on disk than the
 * server sent (socket buffers); the next fetch goes on from what the file holds.
 */
async function assertNoBlobFetchedOnceStored(sc: Scenario, proxy: FaultProxy, images: string[]) {
  const perBlob = await sc.query(
    `SELECT l.sha256, b.created_at, GROUP_CONCAT('/images/' || l.image || '/' || l.idx || '.tar') AS keys
     FROM image_layers l JOIN blobs b ON b.sha256 = l.sha256
     WHERE l.image IN (${images.map((i) => `'${i}'`).join(",")}) GROUP BY l.sha256`,
  );
  assert(perBlob.length > 0, "no layers recorded");
  const report: string[] = [];
  for (const b of perBlob) {
    const keys = String(b.keys).split(",");
    const gets = proxy.requests.filter((r) =>
      r.method === "GET" && keys.some((k) => new URL(r.path, "http://x").pathname.endsWith(k))
    );
    const start = (r: (typeof gets)[number]) =>
      Number(/^bytes=(\d+)-/.exec(r.headers["range"] ?? "")?.[1] ?? 0);
    report.push(`${keys[0]}: ${gets.map((r) => `${start(r)}+${r.bodyBytes}`).join(", ")}`);
    assert(gets.length > 0, `${keys[0]} was never fetched`);
    const late = gets.filter((r) => r.at > Number(b.created_at));
    assertEquals(late.length, 0, `${keys[0]} fetched again after it was stored: ${report.at(-1)}`);
  }
  console.log(`GETs per blob (first byte + bytes sent):\n${report.join("\n")}`);
}

const KILLED = 137; // 128 + SIGKILL, as the shell reports it; Deno reports signal SIGKILL

function killed(r: { code: number; signal: Deno.Signal | null }): boolean {
  return r.signal === "SIGKILL" || r.code === KILLED;
}

Deno.test("SIGKILL at every kind of transition boundary: each rerun resumes, and the end state is exact", async () => {
  const sc = await Scenario.create("1G");
  const ledger = `${sc.dir}.crash-ledger`;
  const proxy = countingProxy(sc);
  try {
    // Each rerun dies right after a kind of boundary (machine.state) it has not died at yet,
    // twice per kind, so that a chain made from the base device and one made from a parent
    // snapshot, and a second blob, are each interrupted too. The next process resumes.
    let kills = 0;
    for (let round = 0;; round++) {
      assert(round < 60, "activate made no progress in 60 rounds");
      const r = await sc.cli(["activate", "golang", "--json", "--endpoint", proxy.url], {
        ...ANON,
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
    // Each blob downloaded once, whatever the kills: counted where the bytes flow, not by
    // what the runs recorded (a blob stored just before a kill is found stored on resume).
    await assertNoBlobFetchedOnceStored(sc, proxy, ["golang"]);
  } finally {
    await proxy.close();
    await Deno.remove(ledger).catch(() => {});
    await sc.teardown();
  }
});

Deno.test("SIGKILL in the middle of a download and of an apply: the rerun finishes cleanly", async () => {
  const sc = await Scenario.create("1G");
  const proxy = countingProxy(sc);
  try {
    // node's layer 4 is over 1 MB, so 64 KiB is mid-download; python's only new layer is about
    // 60 KB, so its apply is stopped at its first progress report.
    for (const crash of ["download:65536", "apply:1"]) {
      const img = crash.startsWith("download") ? "node" : "python";
      const via = ["--endpoint", proxy.url];
      const r = await sc.cli(["activate", img, "--json", ...via], {
        ...ANON,
        THINIMAGE_TEST_CRASH_IN: crash,
      });
      assert(killed(r), `${crash}: the process was not killed (code ${r.code}): ${r.stderr}`);
      const again = await sc.cli(["activate", img, "--json", ...via], ANON);
      assertEquals(again.code, 0, `${crash}: ${again.stderr}`);
      await sc.assertActivationMatches(img, img);
      await sc.assertConsistent();
    }
    // The download killed at 64 KiB is taken over by the rerun from where its file ends.
    await assertNoBlobFetchedOnceStored(sc, proxy, ["node", "python"]);
  } finally {
    await proxy.close();
    await sc.teardown();
  }
});
