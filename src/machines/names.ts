/**
 * The image machines' names, as runs record them (`runs.machine`). In a module of their own so
 * that code reading runs without driving them (the answer for a live activation, gc) need not
 * load the machines.
 *
 * @example
 * ```ts
 * import { MACHINE } from "./names.ts";
 * MACHINE.activate; // "activate"
 * ```
 * @module
 */

/** Each image machine's name. */
export const MACHINE = {
  pull: "pull",
  blob: "blob",
  chain: "chain",
  activate: "activate",
  deactivate: "deactivate",
} as const;
