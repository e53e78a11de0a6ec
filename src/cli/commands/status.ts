/**
 * `thinimage status`: each pool's health, its devices by state, and every difference between
 * what SQLite records and what the kernel has (which `reconcile` would repair).
 * @module
 */
import type { Command } from "../command.ts";
import { StateDir } from "../../state_dir.ts";
import { describeError, ExitCode } from "../../errors.ts";
import { DeviceRecords } from "../../devmapper/records.ts";
import { openPool, poolStatus, type PoolStatusReport } from "../../devmapper/pool.ts";
import { type Finding, ThinPool } from "../../devmapper/thin.ts";
import { describeStatus } from "../render.ts";

/** One pool in the `--json` document of `status`. */
export interface PoolReport {
  name: string;
  adopted: boolean;
  /** The pool's status, or undefined when it could not be read (see `error`). */
  status?: PoolStatusReport;
  error?: string;
  /** Device rows by state. */
  devices: Record<string, number>;
  /** Where SQLite and the kernel disagree, with the repair reconcile would make. */
  differences: Finding[];
}

/** The `--json` document of `status`. */
export interface StatusResult {
  pools: PoolReport[];
  /** True when every pool is healthy and agrees with SQLite. */
  ok: boolean;
}

const status: Command = {
  name: "status",
  summary: "pool health, devices, and differences between the database and the kernel",
  usage: "thinimage status   (exit 1 when a pool is unhealthy or differs from the database)",
  options: {},
  keeps: ["read", "write", "run", "sys"],
  async run(ctx) {
    const dir = new StateDir(ctx.stateDir);
    await dir.ensure();
    const store = dir.openStore();
    try {
      const records = new DeviceRecords(store);
      const pools: PoolReport[] = [];
      for (const name of records.poolNames()) {
        const devices: Record<string, number> = {};
        for (const d of records.devices(name)) devices[d.state] = (devices[d.state] ?? 0) + 1;
        const report: PoolReport = {
          name,
          adopted: records.pool(name)!.adopted,
          devices,
          differences: [],
        };
        try {
          report.status = await poolStatus(name);
          report.differences = await new ThinPool(
            store,
            await openPool(store, name),
            dir.deviceHost(),
          ).survey();
        } catch (err) {
          report.error = describeError(err);
        }
        pools.push(report);
      }
      const ok = pools.every((p) => p.status?.healthy && p.differences.length === 0);
      ctx.result({ pools, ok } satisfies StatusResult, human);
      return ok ? ExitCode.Ok : ExitCode.Failure;
    } finally {
      store.close();
    }
  },
};

function human(r: StatusResult): string {
  if (r.pools.length === 0) return "no pool yet: run 'thinimage pool init'";
  const out: string[] = [];
  for (const p of r.pools) {
    out.push(p.status ? describeStatus(p.status) : `pool ${p.name}: cannot read it: ${p.error}`);
    const states = Object.entries(p.devices).map(([s, n]) => `${n} ${s}`).join(", ");
    out.push(`  devices   ${states || "none"}`);
    if (p.differences.length === 0 && p.status) out.push("  database and kernel agree");
    for (const d of p.differences) {
      out.push(
        `  differs: ${d.device ?? `thin id ${d.thinId}`}: ${d.problem} (reconcile: ${d.action})`,
      );
    }
  }
  return out.join("\n");
}

export default status;
