/**
 * Garbage collection: remove the chain devices and blobs that no image or activation needs
 * (decided by the pure {@linkcode planGc}), children before parents.
 *
 * It refuses to run beside a pull: a pull records its layers' digests only after fetching,
 * so a blob it just stored could look unneeded.
 *
 * @module
 */
import type { Agent } from "./runtime.ts";
import { planGc } from "../image/plan.ts";
import { TemporaryError } from "../errors.ts";
import { SqliteRunStore } from "../store/runs.ts";
import { MACHINE } from "../names.ts";

/** Finished runs older than this many days are forgotten by default (`gc --history-days`). */
export const DEFAULT_HISTORY_DAYS = 7;
/** The newest finished runs of each (machine, resource) that gc always keeps, for `history`. */
export const KEEP_RUNS_PER_RESOURCE = 3;

/** What {@linkcode collectGarbage} removed (or, dry, would remove). */
export interface GcResult {
  dryRun: boolean;
  chains: { chainId: string; device: string }[];
  blobs: { sha256: string; size: number }[];
  blobBytes: number;
  /** Finished runs forgotten (history older than the cutoff). */
  runs: number;
}

/** Remove what nothing needs; with `dryRun`, only say what that is. */
export async function collectGarbage(
  agent: Agent,
  opts: { dryRun: boolean; historyDays?: number; now?: number },
): Promise<GcResult> {
  const busy = [MACHINE.pull, MACHINE.blob, MACHINE.chain, MACHINE.activate].flatMap((m) =>
    agent.engine.store.active(m)
  );
  if (busy.length > 0 && !opts.dryRun) {
    throw new TemporaryError(
      `gc: ${busy.length} run(s) in progress (${
        busy.map((r) => `${r.machine} ${r.resourceId}`).join(", ")
      }); retry when they are done`,
    );
  }
  const chains = agent.catalog.listChains();
  const blobs = agent.blobs.list();
  const plan = planGc({
    images: agent.catalog.listImages().map((i) => ({
      name: i.name,
      layers: i.layers.map((l) => ({ sha256: l.sha256, chainId: l.chainId, size: l.size })),
    })),
    activations: agent.catalog.listActivations().map((a) => ({ name: a.name, chainId: a.chainId })),
    chains: chains.map((c) => ({ chainId: c.chainId, parentChainId: c.parentChainId })),
    blobs: blobs.map((b) => b.sha256),
  });
  const byChain = new Map(chains.map((c) => [c.chainId, c]));
  const bySha = new Map(blobs.map((b) => [b.sha256, b]));
  const result: GcResult = {
    dryRun: opts.dryRun,
    chains: plan.chains.map((id) => ({ chainId: id, device: byChain.get(id)!.device })),
    blobs: plan.blobs.map((sha) => ({ sha256: sha, size: bySha.get(sha)!.size })),
    blobBytes: plan.blobs.reduce((n, sha) => n + bySha.get(sha)!.size, 0),
    runs: 0,
  };
  const days = opts.historyDays ?? DEFAULT_HISTORY_DAYS;
  const prune = (dryRun: boolean) =>
    new SqliteRunStore(agent.store).prune({
      before: (opts.now ?? Date.now()) - days * 86_400_000,
      keep: KEEP_RUNS_PER_RESOURCE,
      dryRun,
    });
  if (opts.dryRun) return { ...result, runs: prune(true) };
  if (result.chains.length > 0) {
    const pool = await agent.pool();
    for (const c of result.chains) {
      await pool.remove(c.device);
      agent.catalog.deleteChain(c.chainId);
    }
  }
  for (const b of result.blobs) await agent.blobs.remove(b.sha256);
  result.runs = prune(false);
  return result;
}
