/**
 * The real {@linkcode ImageEffects}: S3 through `src/retrieve`, blobs through `src/blobs`,
 * layers through `src/tar`, devices through `src/devmapper`. The S3 SDK is imported only
 * when the source is first used, so commands that never reach S3 never load it.
 *
 * @module
 */
import type { ImageEffects, Progress, StoredBlob } from "../machines/effects.ts";
import type { Catalog } from "../store/catalog.ts";
import type { StateDir } from "../state_dir.ts";
import type { BlobStore } from "../blobs/store.ts";
import type { Layer, Manifest } from "../image/manifest.ts";
import type { ObjectSource, SourceConfig } from "../retrieve/source.ts";
import type { ThinPool } from "../devmapper/thin.ts";
import { DeviceRecords } from "../devmapper/records.ts";
import type { Engine } from "../engine/engine.ts";
import type { Machine } from "../engine/machine.ts";
import { formatBytes, type Logger } from "../log.ts";
import { TemporaryError } from "../errors.ts";

/** Least file data written between two looks at the pool's free space while unpacking. */
const MIN_CHECKPOINT_BYTES = 16 << 20;

/** Knobs of the real effects. */
export interface AgentEffectsOptions {
  stateDir: StateDir;
  catalog: Catalog;
  blobs: BlobStore;
  engine: Engine;
  log: Logger;
  /** The pool, opened on first use (commands that never touch devices never open it). */
  pool: () => Promise<ThinPool>;
  source: SourceConfig;
  offline: boolean;
  /** A child run driven by another live process is a TemporaryError instead of a wait. */
  noWait: boolean;
  /** Virtual size of every chain device (a snapshot has its origin's size). */
  deviceSizeBytes: number;
  /** Largest blob accepted, in bytes. */
  maxBlobBytes?: number;
  /** Test hook: called with each step's progress (the crash tests stop the process there). */
  onProgress?: (step: "download" | "apply", done: number, total: number) => void;
}

/** Make the real effects. Call `close()` when done. */
export function agentEffects(o: AgentEffectsOptions): ImageEffects & { close(): void } {
  let source: ObjectSource | undefined;
  let pool: ThinPool | undefined;
  const records = new DeviceRecords(o.catalog.store);
  const getSource = async (): Promise<ObjectSource> => {
    if (!source) {
      o.log.debug("loading the S3 client");
      const { createSource } = await import("../retrieve/source.ts");
      source = createSource(o.source);
    }
    return source;
  };
  const getPool = async (): Promise<ThinPool> => pool ??= await o.pool();
  const hook = (step: "download" | "apply", p: Progress): Progress => (done, total) => {
    p(done, total);
    o.onProgress?.(step, done, total);
  };

  return {
    catalog: o.catalog,
    offline: o.offline,

    async resolve(image: string, signal: AbortSignal): Promise<Manifest> {
      const { resolveImage } = await import("../retrieve/resolve.ts");
      return await resolveImage(await getSource(), image, { signal });
    },

    async fetchBlob(layer: Layer, signal: AbortSignal, progress: Progress): Promise<StoredBlob> {
      const { fetchLayer } = await import("../retrieve/fetch_layer.ts");
      // Downloads cut short by a dead process leave temporary files; no live one is touched.
      await o.blobs.removeStaleTemps();
      const r = await fetchLayer(await getSource(), o.blobs, layer, {
        signal,
        maxBytes: o.maxBlobBytes,
        onProgress: hook("download", progress),
        onRetry: (err, attempt, waitMs) =>
          o.log.warn(`retrying ${layer.key} (attempt ${attempt + 1}) in ${Math.round(waitMs)} ms`, {
            reason: (err as Error)?.message,
          }),
      });
      if (r.downloaded) o.log.info(`fetched ${layer.key}`, { bytes: r.size, sha256: r.sha256 });
      return { sha256: r.sha256, size: r.size, downloaded: r.downloaded };
    },

    async checkRoom(image: string, layers: readonly Layer[]): Promise<void> {
      // Every layer from the first whose chain is not sealed is unpacked (a chain above a new
      // one is new). A chain id needs its blob's digest: a blob not stored yet starts the rest.
      const { chainId } = await import("../image/chain.ts");
      let first = layers.length;
      let parent: string | undefined;
      for (const [i, l] of layers.entries()) {
        const sha256 = o.blobs.findByEtag(l.etag, l.size);
        if (sha256) parent = await chainId(parent, sha256);
        if (!sha256 || o.catalog.getChain(parent!)?.state !== "sealed") {
          first = i;
          break;
        }
      }
      const todo = layers.slice(first);
      // A layer's tar size: the least it unpacks to (file data plus headers; gzip, more).
      const bytes = todo.reduce((n, l) => n + l.size, 0);
      if (bytes === 0) return;
      const room = await (await getPool()).room();
      const usable = Math.max(0, room.freeBytes - room.floorBytes);
      if (bytes <= usable) return;
      throw new TemporaryError(
        `pool ${room.pool} has no room for ${image}: ${todo.length} layer(s) to unpack hold ` +
          `${formatBytes(bytes)}, the pool has ${formatBytes(room.freeBytes)} free and keeps ` +
          `${
            formatBytes(room.floorBytes)
          } of it in reserve; free space with 'thinimage rm IMAGE' ` +
          "and 'thinimage gc', or grow the pool",
        {
          details: {
            pool: room.pool,
            image,
            layers: todo.length,
            bytes,
            freeBytes: room.freeBytes,
            floorBytes: room.floorBytes,
          },
        },
      );
    },

    async validateBlob(sha256: string, signal: AbortSignal): Promise<void> {
      const { validateLayer } = await import("../tar/validate.ts");
      // Hardlinks into lower layers are checked against the real lower tree when applied;
      // here every such target is taken to be a file so that only the rules of this blob count.
      // A layer whose files alone overflow a chain device is refused before any device is made.
      const s = await validateLayer(o.blobs.pathOf(sha256), {
        signal,
        lower: () => "file",
        limits: { unpackedBytes: o.deviceSizeBytes },
      });
      o.blobs.recordLayer(sha256, s);
    },

    deviceExists: async (device) => (await getPool()).get(device) !== undefined,
    async createBaseDevice(device: string): Promise<void> {
      const p = await getPool();
      await p.createThin(device, o.deviceSizeBytes);
      await p.formatOnce(device);
      await p.deactivate(device);
    },
    async createSnapshot(device: string, origin: string): Promise<void> {
      await (await getPool()).createSnapshot(device, origin);
    },
    async removeDevice(device: string): Promise<void> {
      // A process killed while applying a layer leaves the device mounted: let go of it first.
      const { unmount } = await import("../devmapper/fs.ts");
      await unmount(o.stateDir.mountPoint(device));
      await Deno.remove(o.stateDir.mountPoint(device)).catch(() => {});
      await (await getPool()).remove(device);
    },
    async activateDevice(device: string): Promise<string> {
      // Warm path: a device already live with its recorded thin id needs one dmsetup call.
      if (!pool) {
        const { liveDevice } = await import("./existing.ts");
        const live = await liveDevice(records, device);
        if (live) return live.path;
      }
      return await (await getPool()).activate(device);
    },
    thinIdOf: (device) => records.device(device)?.thinId,

    async applyLayer(device, sha256, signal, progress) {
      const p = await getPool();
      const fs = await import("../devmapper/fs.ts");
      const { applyLayer } = await import("../tar/apply.ts");
      const dir = o.stateDir.mountPoint(device);
      const dev = await p.activate(device);
      let mounted = false;
      try {
        await fs.mountPrivate(dev, dir);
        mounted = true;
        // validateBlob passed this blob and its digest was verified when fetched: one pass,
        // still held to every rule and to the digest (not hashed again while the file is
        // untouched since), onto a snapshot discarded on failure.
        const s = await applyLayer(o.blobs.pathOf(sha256), dir, {
          expectedSha256: sha256,
          validated: true,
          verifiedIdentity: o.blobs.verifiedIdentity(sha256),
          whiteouts: o.blobs.layerOf(sha256)?.whiteouts,
          noCrossMounts: true,
          signal,
          onProgress: hook("apply", progress),
          // The pool is shared: writes stop once it nears the free-space floor, not only
          // before a device is made. Looked at again after half the room left was written.
          checkpointBytes: (p.lastHeadroom ?? 0) / 2,
          checkpoint: async () => {
            await p.syncWrites(dir);
            return Math.max(MIN_CHECKPOINT_BYTES, (await p.guardFreeSpace()) / 2);
          },
        });
        // A full pool fails writeback while write() and close() succeed: only syncfs and
        // the pool's status tell, so the layer counts only after both.
        await p.syncWrites(dir);
        await fs.unmount(dir);
        mounted = false;
        await p.deactivate(device);
        return { unpackedBytes: s.unpackedBytes };
      } catch (err) {
        if (mounted) await fs.unmount(dir).catch(() => {});
        await p.deactivate(device).catch(() => {});
        throw err;
      } finally {
        await Deno.remove(dir).catch(() => {});
      }
    },

    async child<Req, Res>(
      m: Machine<Req, Res, string, string>,
      resourceId: string,
      request: Req,
      signal: AbortSignal,
    ): Promise<Res> {
      const run = await o.engine.start(m, resourceId, request, { signal });
      if (!run.created && !run.local && o.noWait) {
        throw new TemporaryError(
          `${m.name} ${resourceId} is in progress in another process (run ${run.id}); --no-wait given`,
        );
      }
      if (!run.created) o.log.debug(`joining ${m.name} run ${run.id}`, { resource: resourceId });
      return await run.wait({ signal });
    },

    hasActiveRun: (machine, resourceId) =>
      o.engine.store.active(machine).some((r) => r.resourceId === resourceId),

    warn: (message, fields) => o.log.warn(message, fields),
    info: (message, fields) => o.log.info(message, fields),
    progress: (label) => (done, total) => o.log.progress(label, done, total),

    close() {
      source?.close();
    },
  };
}
