/**
 * Everything the image machines do to the world, as narrow ports: the catalogue, the image
 * source, the blobs, the devices, child runs and what is said to the person. The machines in
 * this folder decide what happens and in which order, and each takes only the ports it uses;
 * `src/agent/effects.ts` implements them with SQLite, S3, the blob store, the tar applier and
 * device-mapper. So the machines import no effect module, and their logic can be exercised
 * against any implementation.
 *
 * @module
 */
import type { Catalogue } from "../image/catalogue.ts";
import type { Layer, Manifest } from "../image/manifest.ts";
import type { Machine } from "../engine/machine.ts";

/** Progress callback: bytes done so far of `total`. */
export type Progress = (done: number, total: number) => void;

/** A stored blob, as the machines need to know it. */
export interface StoredBlob {
  sha256: string;
  size: number;
  /** False when the bytes were already stored (same ETag and size). */
  downloaded: boolean;
}

/** The catalogue of images, chains and activations. */
export interface CataloguePort {
  readonly catalog: Catalogue;
}

/** Where images are listed. */
export interface SourcePort {
  /** Never touch the network (`--offline`). */
  readonly offline: boolean;
  /** List the image's layers at the source (one listing; throws 65 or 69). */
  resolve(image: string, signal: AbortSignal): Promise<Manifest>;
}

/** The blob store, filled from the source. */
export interface BlobPort {
  /** Make sure the layer's blob is stored; download only when it is not. */
  fetchBlob(layer: Layer, signal: AbortSignal, progress: Progress): Promise<StoredBlob>;
  /** Validate a stored blob as a layer (throws InvalidInputError, 65, when it is refused). */
  validateBlob(sha256: string, signal: AbortSignal): Promise<void>;
}

/** The thin pool's devices, and the layers unpacked onto them. */
export interface DevicePort {
  /**
   * Refuse (TemporaryError, exit 75, with the figures) when the layers of `image` still to be
   * unpacked hold more bytes than the pool can take above its free-space floor: checked after
   * the listing, before the first download.
   */
  checkRoom(image: string, layers: readonly Layer[]): Promise<void>;
  /** True when a thin device record named `device` exists (whatever its state). */
  deviceExists(device: string): Promise<boolean>;
  /**
   * Create the empty base device `device` and make its filesystem (idempotent). Refuses with a
   * temporary error (exit 75) when the pool is short of free space.
   */
  createBaseDevice(device: string): Promise<void>;
  /** Create `device` as a thin snapshot of `origin` (idempotent); short of space, as above. */
  createSnapshot(device: string, origin: string): Promise<void>;
  /** Remove `device` (deactivate, delete its thin id, forget it); absent is done. */
  removeDevice(device: string): Promise<void>;
  /** Activate `device` and return its path under /dev/mapper. */
  activateDevice(device: string): Promise<string>;
  /** The thin id of `device`, if it exists. */
  thinIdOf(device: string): number | undefined;
  /**
   * Mount `device` privately (nosuid,nodev,noexec), apply the blob as a layer onto it, sync
   * the filesystem, check the pool, unmount and deactivate. Returns the unpacked bytes.
   */
  applyLayer(
    device: string,
    sha256: string,
    signal: AbortSignal,
    progress: Progress,
  ): Promise<{ unpackedBytes: number }>;
}

/** Runs of other machines. */
export interface RunPort {
  /**
   * Run a child machine to completion (single flight: joins a run another process already
   * drives, unless `--no-wait`, which makes a busy child a TemporaryError).
   */
  child<Req, Res>(
    m: Machine<Req, Res, string, string>,
    resourceId: string,
    request: Req,
    signal: AbortSignal,
  ): Promise<Res>;
  /** True when a run of machine `machine` for `resourceId` is active (here or elsewhere). */
  hasActiveRun(machine: string, resourceId: string): boolean;
}

/** What is said to the person (stderr) or the log. */
export interface SayPort {
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  /** Progress of a named step (shown on a terminal only). */
  progress(label: string): Progress;
}

/** Every port: what the pull and activate machines, which drive the others, take. */
export interface ImageEffects
  extends CataloguePort, SourcePort, BlobPort, DevicePort, RunPort, SayPort {}
