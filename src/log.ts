/**
 * What the agent and the engine log through: levelled messages with structured fields, and
 * progress. The CLI's implementation (`src/cli/log.ts`) writes text or JSON lines to stderr
 * and draws progress only on a terminal; tests pass their own.
 *
 * @example
 * ```ts
 * import type { Logger } from "./log.ts";
 * const quiet: Logger = {
 *   debug() {},
 *   info() {},
 *   warn: (msg) => console.warn(msg),
 *   error: (msg) => console.error(msg),
 *   progress() {},
 * };
 * quiet.warn("pool is low on space", { pool: "thinimage-pool" });
 * ```
 * @module
 */

/** Structured fields of one message (printed as `k=v`, or as JSON keys). */
export type LogFields = Record<string, unknown>;

/** Levelled messages: what the engine needs. */
export interface Log {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** Levelled messages and progress: what the agent needs. */
export interface Logger extends Log {
  /** `done` of `total` (bytes, usually) of the task `label`; a finished task clears its line. */
  progress(label: string, done: number, total?: number): void;
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
