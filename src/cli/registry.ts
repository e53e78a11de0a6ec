/**
 * Every subcommand, by name, as a lazy import: a command loads only its own modules.
 * @module
 */
import type { Command } from "./command.ts";

/** Subcommand name -> loader. Add a line here when an issue adds a command. */
export const COMMANDS: Record<string, () => Promise<{ default: Command }>> = {
  history: () => import("./commands/history.ts"),
  pool: () => import("./commands/pool.ts"),
  status: () => import("./commands/status.ts"),
  fetch: () => import("./commands/fetch.ts"),
  images: () => import("./commands/images.ts"),
  validate: () => import("./commands/validate.ts"),
  apply: () => import("./commands/apply.ts"),
  pull: () => import("./commands/pull.ts"),
  activate: () => import("./commands/activate.ts"),
  deactivate: () => import("./commands/deactivate.ts"),
  ls: () => import("./commands/ls.ts"),
  rm: () => import("./commands/rm.ts"),
  gc: () => import("./commands/gc.ts"),
  daemon: () => import("./commands/daemon.ts"),
};
