import { assert, assertEquals } from "../../helpers/assert.ts";
import { fileURLToPath } from "node:url";
import { listThinIds } from "../../../src/devmapper/pool.ts";
import type { DmOp } from "../../../src/devmapper/thin.ts";
import { type PoolFixture, withPool } from "./helpers.ts";
import { permissionFlags } from "../../../src/cli/permissions.ts";

const MiB = 2 ** 20;
const CHILD = fileURLToPath(new URL("./crash_child.ts", import.meta.url));

/** Run crash_child.ts and require that it died by SIGKILL. */
async function killedAt(f: PoolFixture, op: DmOp, point: string, name: string, origin = "") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      ...permissionFlags({ netHosts: ["127.0.0.1"] }), // the product's flags, not -A
      CHILD,
      f.dir,
      f.pool.name,
      op,
      point,
      name,
      origin,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(
    out.signal,
    "SIGKILL",
    `child was not killed: ${new TextDecoder().decode(out.stderr)}`,
  );
}

async function suspended(f: PoolFixture, name: string): Promise<boolean> {
  const info = await f.dm.run(["info", "-c", "--noheadings", "-o", "suspended", name]);
  return info.trim() === "Suspended";
}

/**
 * After reconcile, the pool holds exactly the recorded ids and nothing differs (survey reports
 * an unrecorded id in the pool, a recorded id missing from it, and any live-device mismatch).
 */
async function assertConsistent(f: PoolFixture) {
  assertEquals(await f.thin.survey(), [], "differences left after reconcile");
  assertEquals(f.thin.records.faultyIds(f.pool.name), [], "no id was written off");
}

const CASES: { op: DmOp; point: "afterIntent" | "afterMessage"; action: string }[] = [
  { op: "create_thin", point: "afterIntent", action: "dropped-intent" },
  { op: "create_thin", point: "afterMessage", action: "rolled-back" },
  { op: "create_snap", point: "afterIntent", action: "dropped-intent" },
  { op: "create_snap", point: "afterMessage", action: "rolled-back" },
  { op: "delete", point: "afterIntent", action: "finished-removal" },
  { op: "delete", point: "afterMessage", action: "finished-removal" },
];

// One pool for every case (a pool costs seconds to set up under emulation); each case uses
// its own names and ends with the pool holding exactly the recorded ids.
Deno.test("SIGKILL at each crash point of each intent; reconcile leaves nothing leaked or reused", async (t) => {
  const f = await withPool();
  try {
    for (const [i, c] of CASES.entries()) {
      await t.step(`${c.point} of ${c.op}: reconcile ${c.action}`, async () => {
        const origin = `${f.pool.name}-c${i}-origin`;
        const target = `${f.pool.name}-c${i}-target`;
        if (c.op === "create_snap") {
          await f.thin.createThin(origin, 16 * MiB);
          await f.thin.activate(origin); // active: the child suspends it around create_snap
        }
        if (c.op === "delete") {
          await f.thin.createThin(target, 16 * MiB);
          await f.thin.activate(target);
        }
        await killedAt(f, c.op, c.point, target, origin);
        const crashed = f.thin.get(target);
        assert(crashed !== undefined, "the intent was recorded before the kill");
        assertEquals(crashed.state, c.op === "delete" ? "removing" : "creating");
        // Killed between create_snap and resume, the child leaves its origin suspended.
        const leftSuspended = c.op === "create_snap" && c.point === "afterMessage";
        const expected = [...(leftSuspended ? [[origin, "resumed"]] : []), [target, c.action]];
        if (c.op === "create_snap") {
          assertEquals(await suspended(f, origin), leftSuspended);
        }
        if (leftSuspended) {
          // survey (what `thinimage status` shows) reports the same, and repairs nothing.
          const survey = await f.thin.survey();
          assertEquals(survey.map((x) => [x.device, x.action]), expected);
          assertEquals(await suspended(f, origin), true);
        }
        const report = await f.thin.reconcile();
        assertEquals(report.findings.map((x) => [x.device, x.action]), expected);
        if (c.op === "create_snap") assertEquals(await suspended(f, origin), false);
        assertEquals(f.thin.get(target), undefined);
        assertEquals(await f.dm.table(target), undefined, "no live device left");
        await assertConsistent(f);
        // The name is usable again, under an id never handed out before.
        const again = await f.thin.createThin(target, 16 * MiB);
        assert(
          again.thinId > crashed.thinId,
          `id ${again.thinId} reused (crashed: ${crashed.thinId})`,
        );
        await f.thin.remove(target);
        if (c.op === "create_snap") await f.thin.remove(origin);
      });
    }
    await t.step(
      "after create_thin's message, re-running createThin without reconcile rolls back and re-creates",
      async () => {
        const target = `${f.pool.name}-rerun`;
        await killedAt(f, "create_thin", "afterMessage", target);
        const crashedId = f.thin.get(target)!.thinId;
        assert((await listThinIds(f.pool, f.dm)).includes(crashedId));
        const d = await f.thin.createThin(target, 16 * MiB);
        assertEquals(d.state, "created");
        await assertConsistent(f);
      },
    );
  } finally {
    await f.teardown();
  }
});
