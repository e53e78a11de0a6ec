/**
 * What more than one command shows: a layer's summary (validate, apply), a gc result (gc, rm),
 * a pool's status (pool status, status), and how a layer file that cannot be opened is told
 * (validate, apply). Commands share these through this module, not by importing each other.
 *
 * @example
 * ```ts
 * import { gcSummary } from "./render.ts";
 * gcSummary({ dryRun: true, chains: [], blobs: [], blobBytes: 0, runs: 0 });
 * // "gc: would remove 0 chain device(s) and 0 blob(s) (0 B)"
 * ```
 * @module
 */
import { formatBytes } from "../log.ts";
import { UsageError } from "../errors.ts";
import type { LayerSummary } from "../tar/rules.ts";
import type { GcResult } from "../agent/gc.ts";
import type { PoolStatusReport } from "../devmapper/pool.ts";

/** A layer summary as a few human lines. */
export function describeSummary(s: LayerSummary): string {
  const largest = s.largestFile
    ? `${s.largestFile.path} (${formatBytes(s.largestFile.bytes)})`
    : "none";
  return [
    `  ${s.entries} entries: ${s.files} files, ${s.directories} directories, ${s.symlinks} symlinks, ${s.hardlinks} hardlinks, ${s.whiteouts} whiteouts`,
    `  unpacked ${formatBytes(s.unpackedBytes)} from ${formatBytes(s.blobBytes)} (${
      s.compression === "none" ? "plain tar" : s.compression
    })`,
    `  largest file: ${largest}`,
  ].join("\n");
}

/** Turn "no such file" for the command's own arguments into a usage error (exit 2). */
export function openError(file: string, dir?: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      throw new UsageError(
        `cannot open ${dir ? `${file} or ${dir}` : file}: ${(err as Error).message}`,
      );
    }
    if (err instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`${file} is a directory, not a layer file`);
    }
    throw err;
  };
}

/** One line for a gc result. */
export function gcSummary(r: GcResult): string {
  const verb = r.dryRun ? "would remove" : "removed";
  return `gc: ${verb} ${r.chains.length} chain device(s) and ${r.blobs.length} blob(s) (${
    formatBytes(r.blobBytes)
  })` + (r.runs ? `; ${r.dryRun ? "would forget" : "forgot"} ${r.runs} finished run(s)` : "") +
    r.chains.map((c) => `\n  device ${c.device}`).join("") +
    r.blobs.map((b) => `\n  blob sha256:${b.sha256}`).join("");
}

export function describeStatus(s: PoolStatusReport): string {
  const pctUsed = (u: number, t: number) => (t ? ((u / t) * 100).toFixed(1) : "0.0");
  return [
    `pool ${s.name}: ${s.healthy ? "healthy" : `UNHEALTHY (${s.problems.join(", ")})`}`,
    `  data      ${formatBytes(s.dataUsedBytes)} of ${formatBytes(s.dataTotalBytes)} used (${
      pctUsed(s.usedDataBlocks, s.totalDataBlocks)
    }%, ${s.usedDataBlocks}/${s.totalDataBlocks} blocks of ${formatBytes(s.blockSectors * 512)})`,
    `  metadata  ${formatBytes(s.metaUsedBytes)} of ${formatBytes(s.metaTotalBytes)} used (${
      pctUsed(s.usedMetaBlocks, s.totalMetaBlocks)
    }%)`,
    `  transaction id ${s.transactionId}${s.errorIfNoSpace ? ", error_if_no_space" : ""}`,
  ].join("\n");
}
