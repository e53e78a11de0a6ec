/**
 * The numbered schema migrations, oldest first. A migration, once released, never changes:
 * a new schema is a new entry. Each concern keeps its SQL in its own file under
 * `migrations/`, so the list reads as the history of the schema.
 * @module
 */
import { RUNS_SQL } from "./migrations/0001_runs.ts";
import { BLOBS_SQL } from "./migrations/0002_blobs.ts";
import { DEVICES_SQL } from "./migrations/0003_devices.ts";
import { IMAGES_SQL } from "./migrations/0004_images.ts";
import { BLOB_CHECKS_SQL } from "./migrations/0005_blob_checks.ts";

/** One schema step: `version` is its 1-based place in {@linkcode MIGRATIONS}. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "runs", sql: RUNS_SQL },
  { version: 2, name: "blobs", sql: BLOBS_SQL },
  { version: 3, name: "devices", sql: DEVICES_SQL },
  { version: 4, name: "images", sql: IMAGES_SQL },
  { version: 5, name: "blob_checks", sql: BLOB_CHECKS_SQL },
];
