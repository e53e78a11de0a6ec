// The free-space guard before every new device (createThin, createSnapshot): each threshold on
// its own refuses with exit 75 and makes nothing, and a pool above both is used. The pool's
// status comes from a dmsetup stand-in that answers with status lines as the kernel prints
// them (tests/devmapper/parse_test.ts has captured ones); nothing else is faked.
import { assert, assertEquals } from "../helpers/assert.ts";
import { join } from "node:path";
import { Dmsetup } from "../../src/devmapper/dmsetup.ts";
import type { PoolInfo } from "../../src/devmapper/pool.ts";
import { ThinPool } from "../../src/devmapper/thin.ts";
import { openStore } from "../../src/store/db.ts";
import { ExitCode, TemporaryError, ThinimageError } from "../../src/errors.ts";

/** Answers `status` with a pool at the given usage; any other call is recorded and fails. */
class StatusOnly extends Dmsetup {
  calls: string[] = [];
  constructor(public used: { data: number; meta: number }, public flags = "rw") {
    super({ backend: "dmsetup" }); // the stand-in answers for the program
  }
  override run(args: string[]): Promise<string> {
    this.calls.push(args.join(" "));
    if (args[0] === "status") {
      const { data, meta } = this.used;
      return Promise.resolve(
        `0 2097152 thin-pool 3 ${meta}/1000 ${data}/1000 - ${this.flags} discard_passdown error_if_no_space - 256`,
      );
    }
    if (args[0] === "info") return Promise.resolve("253:0\n");
    return Promise.reject(new Error(`unexpected dmsetup ${args.join(" ")}`));
  }
}

const POOL: PoolInfo = {
  name: "thinimage-guard-test",
  path: "/dev/mapper/thinimage-guard-test",
  metaDev: "7:0",
  dataDev: "7:1",
  blockSectors: 128,
  dataSectors: 2097152,
  adopted: false,
};

async function attempt(used: { data: number; meta: number }, flags?: string) {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-guard-" });
  const store = openStore(join(dir, "thinimage.db"));
  const dm = new StatusOnly(used, flags);
  const thin = new ThinPool(store, POOL, {
    owners: { owner: "test-owner", liveness: { status: () => "alive" } },
    locksDir: join(dir, "locks"),
    minFreeDataPercent: 10,
    minFreeMetaPercent: 10,
  }, dm);
  try {
    const err = await thin.createThin("thinimage-guard-test-dev", 2 ** 20).then(
      () => undefined,
      (e) => e,
    );
    return { err, calls: dm.calls, records: thin.list() };
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Refused before any change: 75, no record, no message sent to the pool. */
function assertRefused(r: Awaited<ReturnType<typeof attempt>>, what: RegExp) {
  assert(r.err instanceof TemporaryError, `not refused: ${r.err}`);
  assertEquals((r.err as TemporaryError).exitCode, ExitCode.TempFail);
  assert(what.test(r.err.message), r.err.message);
  assertEquals(r.records, []);
  assertEquals(r.calls.filter((c) => !c.startsWith("status") && !c.startsWith("info")), []);
}

Deno.test("free-space guard: data below its threshold alone refuses (75), nothing made", async () => {
  // 95% of data used (5% free < 10%), metadata nearly empty.
  assertRefused(await attempt({ data: 950, meta: 10 }), /data 950\/1000 blocks used \(5\.0% free/);
});

Deno.test("free-space guard: metadata below its threshold alone refuses (75), nothing made", async () => {
  // Data nearly empty, 95% of metadata used.
  assertRefused(await attempt({ data: 10, meta: 950 }), /metadata 950\/1000 \(5\.0% free/);
});

Deno.test("free-space guard: out_of_data_space refuses (75) whatever the counts say", async () => {
  assertRefused(
    await attempt({ data: 10, meta: 10 }, "out_of_data_space"),
    /low on space/,
  );
});

Deno.test("free-space guard: above both thresholds it goes on to the pool (just at 10% free too)", async () => {
  for (const used of [{ data: 100, meta: 100 }, { data: 900, meta: 900 }]) {
    const r = await attempt(used);
    // Past the guard: the status was read, and what fails next is the pool's record, which
    // this stand-in world has none of (the step after the guard).
    assert(!(r.err instanceof TemporaryError), `refused at ${JSON.stringify(used)}: ${r.err}`);
    assert(r.calls.some((c) => c.startsWith("status")), r.calls.join("\n"));
    assert(/no record of pool/.test(String(r.err)), String(r.err));
  }
});

Deno.test("free-space guard: a read-only pool is an error (1), not a wait (75)", async () => {
  const r = await attempt({ data: 10, meta: 10 }, "ro");
  assert(r.err instanceof ThinimageError && !(r.err instanceof TemporaryError), String(r.err));
  assertEquals(r.records, []);
});
