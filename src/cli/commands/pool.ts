/**
 * `thinimage pool init|status`: make, adopt, or inspect the thin pool.
 * @module
 */
import type { Command } from "../command.ts";
import { describeStatus } from "../render.ts";
import { StateDir } from "../../state_dir.ts";
import { ExitCode, UsageError } from "../../errors.ts";
import { checkName, KERNEL_PREFIX } from "../../names.ts";
import { parseSize } from "../../devmapper/parse.ts";
import {
  adoptPool,
  initPool,
  type PoolInfo,
  poolStatus,
  type PoolStatusReport,
} from "../../devmapper/pool.ts";
import { choosePool } from "../../devmapper/records.ts";

/** The `--json` document of `pool init`. */
export interface PoolInitResult {
  pool: PoolInfo;
  status: PoolStatusReport;
}

const USAGE =
  `thinimage pool init [--name NAME] [--data-size 2G] [--meta-size SIZE] [--block-size 64K]
       thinimage pool init --pool NAME      adopt an existing thin pool
       thinimage pool status [--pool NAME]  exit 1 when unhealthy, 75 when out of data space

  init makes a loop-backed pool from files in STATE/pool/ (idempotent; refuses with 65 a
  same-named device whose table differs). Sizes take K, M, G, T (powers of 1024).`;

function size(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSize(String(v), flag);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${USAGE}`);
  }
}

/** The exit code a pool's health maps to. */
export function healthExitCode(s: PoolStatusReport): number {
  if (s.healthy) return ExitCode.Ok;
  if (s.outOfDataSpace && !s.failed && !s.needsCheck && !s.readOnly) return ExitCode.TempFail;
  return ExitCode.Failure;
}

const pool: Command = {
  name: "pool",
  summary: "make, adopt or inspect the thin pool (init, status)",
  usage: USAGE,
  options: {
    name: { type: "string" },
    pool: { type: "string" },
    "data-size": { type: "string" },
    "meta-size": { type: "string" },
    "block-size": { type: "string" },
  },
  positionals: [1, 1],
  keeps: ["read", "write", "run", "sys"],
  async run(ctx, { values, positionals }) {
    const sub = positionals[0];
    if (sub !== "init" && sub !== "status") {
      throw new UsageError(`pool: unknown subcommand '${sub}'\nusage: ${USAGE}`);
    }
    const sizes = {
      dataSize: size(values["data-size"], "--data-size"),
      metaSize: size(values["meta-size"], "--meta-size"),
      blockSize: size(values["block-size"], "--block-size"),
    };
    const name = values.name === undefined
      ? undefined
      : checkName("pool", values.name as string, "--name");
    if (name !== undefined && !name.startsWith(KERNEL_PREFIX)) {
      throw new UsageError(
        `pool init --name ${name}: a pool made here is named thinimage-SOMETHING; ` +
          `to adopt a pool made elsewhere, use 'thinimage pool init --pool ${name}'`,
      );
    }
    const adopt = values.pool === undefined
      ? undefined
      : checkName("pool", values.pool as string, "--pool");
    if (sub === "status" && (name || Object.values(sizes).some((v) => v !== undefined))) {
      throw new UsageError(`pool status takes only --pool\nusage: ${USAGE}`);
    }
    if (adopt && (name || Object.values(sizes).some((v) => v !== undefined))) {
      throw new UsageError(
        `pool init --pool adopts a pool as it is: no --name or sizes\nusage: ${USAGE}`,
      );
    }
    const dir = new StateDir(ctx.stateDir);
    await dir.ensure();
    const store = dir.openStore();
    try {
      if (sub === "status") {
        const s = await poolStatus(choosePool(store, adopt));
        ctx.result(s, describeStatus);
        return healthExitCode(s);
      }
      const info = adopt
        ? await adoptPool(store, adopt)
        : await initPool(dir.pool, store, { name, ...sizes });
      const doc: PoolInitResult = { pool: info, status: await poolStatus(info.name) };
      ctx.result(
        doc,
        (d) =>
          `${d.pool.adopted ? "adopted" : "ready"}: ${
            describeStatus(d.status)
          }\n  devices   metadata ${d.pool.metaDev}, data ${d.pool.dataDev}`,
      );
      return healthExitCode(doc.status);
    } finally {
      store.close();
    }
  },
};

export default pool;
