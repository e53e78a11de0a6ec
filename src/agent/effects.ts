/**
 * The real {@linkcode ImageEffects}, one port at a time: the catalogue in SQLite, the source
 * through `src/retrieve`, blobs through `src/blobs` and `src/tar`, devices through
 * `src/devmapper`, child runs through the engine. The S3 SDK is imported only when the source
 * is first used, and the pool opened only when a device is, so commands that never reach S3
 * or devices never load them.
 *
 * @module
 */
import type {
  BlobPort,
  DevicePort,
  ImageEffects,
  Progress,
  RunPort,
  SayPort,
  SourcePort,
  StoredBlob,
} from "../machines/effects.ts";
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
  const lazy = new Lazy(o);
  return {
    catalog: o.catalog,
    ...sourcePort(o, lazy),
    ...blobPort(o, lazy),
    ...devicePort(o, lazy),
    ...runPort(o),
    ...sayPort(o.log),
    close: () => lazy.close(),
  };
}

/** The S3 source and the pool, each made on first use. */
class Lazy {
  #source?: ObjectSource;
  #pool?: ThinPool;
  constructor(readonly o: AgentEffectsOptions) {}

  async source(): Promise<ObjectSource> {
    if (!this.#source) {
      this.o.log.debug("loading the S3 client");
      const { createSource } = await import("../retrieve/source.ts");
      this.#source = createSource(this.o.source);
    }
    return this.#source;
  }

  async pool(): Promise<ThinPool> {
    return this.#pool ??= await this.o.pool();
  }

  /** True once the pool was opened. */
  get poolOpen(): boolean {
    return this.#pool !== undefined;
  }

  /** `p`, also told to the test hook as step `step`. */
  hook(step: "download" | "apply", p: Progress): Progress {
    return (done, total) => {
      p(done, total);
      this.o.onProgress?.(step, done, total);
    };
  }

  close(): void {
    this.#source?.close();
  }
}

function sourcePort(o: AgentEffectsOptions, lazy: Lazy): SourcePort {
  return {
    offline: o.offline,
    async resolve(image: string, signal: AbortSignal): Promise<Manifest> {
      const { resolveImage } = await import("../retrieve/resolve.ts");
      return await resolveImage(await lazy.source(), image, { signal });
    },
  };
}

function blobPort(o: AgentEffectsOptions, lazy: Lazy): BlobPort {
  return {
    async fetchBlob(layer: Layer, signal: AbortSignal, progress: Progress): Promise<StoredBlob> {
      const { fetchLayer } = await import("../retrieve/fetch_layer.ts");
      // Downloads cut short by a dead process leave temporary files; no live one is touched.
      await o.blobs.removeStaleTemps();
      const r = await fetchLayer(await lazy.source(), o.blobs, layer, {
        signal,
        maxBytes: o.maxBlobBytes,
        onProgress: lazy.hook("download", progress),
        onRetry: (err, attempt, waitMs) =>
          o.log.warn(`retrying ${layer.key} (attempt ${attempt + 1}) in ${Math.round(waitMs)} ms`, {
            reason: (err as Error)?.message,
          }),
      });
      if (r.downloaded) o.log.info(`fetched ${layer.key}`, { bytes: r.size, sha256: r.sha256 });
      return { sha256: r.sha256, size: r.size, downloaded: r.downloaded };
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
  };
}

function devicePort(o: AgentEffectsOptions, lazy: Lazy): DevicePort {
  const records = new DeviceRecords(o.catalog.store);
  return {
    async checkRoom(image: string, layers: readonly Layer[]): Promise<void> {
      const todo = await layersToUnpack(o, layers);
      // A layer's tar size: the least it unpacks to (file data plus headers; gzip, more).
      const bytes = todo.reduce((n, l) => n + l.size, 0);
      if (bytes === 0) return;
      const room = await (await lazy.pool()).room();
      if (bytes > Math.max(0, room.freeBytes - room.floorBytes)) {
        throw noRoom(image, todo.length, bytes, room);
      }
    },
    deviceExists: async (device) => (await lazy.pool()).get(device) !== undefined,
    async createBaseDevice(device: string): Promise<void> {
      const p = await lazy.pool();
      await p.createThin(device, o.deviceSizeBytes);
      await p.formatOnce(device);
      await p.deactivate(device);
    },
    async createSnapshot(device: string, origin: string): Promise<void> {
      await (await lazy.pool()).createSnapshot(device, origin);
    },
    async removeDevice(device: string): Promise<void> {
      // A process killed while applying a layer leaves the device mounted: let go of it first.
      const { unmount } = await import("../devmapper/fs.ts");
      await unmount(o.stateDir.mountPoint(device));
      await Deno.remove(o.stateDir.mountPoint(device)).catch(() => {});
      await (await lazy.pool()).remove(device);
    },
    async activateDevice(device: string): Promise<string> {
      // Warm path: a device already live with its recorded thin id needs one dmsetup call.
      if (!lazy.poolOpen) {
        const { liveDevice } = await import("./existing.ts");
        const live = await liveDevice(records, device);
        if (live) return live.path;
      }
      return await (await lazy.pool()).activate(device);
    },
    thinIdOf: (device) => records.device(device)?.thinId,
    async applyLayer(device, sha256, signal, progress) {
      const onProgress = lazy.hook("apply", progress);
      return await unpackOnto(o, await lazy.pool(), device, sha256, signal, onProgress);
    },
  };
}

/**
 * The layers still to unpack: every layer from the first whose chain is not sealed (a chain
 * above a new one is new). A chain id needs its blob's digest: a blob not stored yet starts
 * the rest.
 */
async function layersToUnpack(
  o: AgentEffectsOptions,
  layers: readonly Layer[],
): Promise<readonly Layer[]> {
  const { chainId } = await import("../image/chain.ts");
  let parent: string | undefined;
  for (const [i, l] of layers.entries()) {
    const sha256 = o.blobs.findByEtag(l.etag, l.size);
    if (sha256) parent = await chainId(parent, sha256);
    if (!sha256 || o.catalog.getChain(parent!)?.state !== "sealed") return layers.slice(i);
  }
  return [];
}

function noRoom(
  image: string,
  layers: number,
  bytes: number,
  room: { pool: string; freeBytes: number; floorBytes: number },
): TemporaryError {
  return new TemporaryError(
    `pool ${room.pool} has no room for ${image}: ${layers} layer(s) to unpack hold ` +
      `${formatBytes(bytes)}, the pool has ${formatBytes(room.freeBytes)} free and keeps ` +
      `${formatBytes(room.floorBytes)} of it in reserve; free space with 'thinimage rm IMAGE' ` +
      "and 'thinimage gc', or grow the pool",
    {
      details: {
        pool: room.pool,
        image,
        layers,
        bytes,
        freeBytes: room.freeBytes,
        floorBytes: room.floorBytes,
      },
    },
  );
}

/**
 * Mount `device` privately, apply the blob onto it, sync, unmount and deactivate: the layer
 * counts only once all of that succeeded.
 */
async function unpackOnto(
  o: AgentEffectsOptions,
  p: ThinPool,
  device: string,
  sha256: string,
  signal: AbortSignal,
  onProgress: Progress,
): Promise<{ unpackedBytes: number }> {
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
      onProgress,
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
}

function runPort(o: AgentEffectsOptions): RunPort {
  return {
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
  };
}

function sayPort(log: Logger): SayPort {
  return {
    warn: (message, fields) => log.warn(message, fields),
    info: (message, fields) => log.info(message, fields),
    progress: (label) => (done, total) => log.progress(label, done, total),
  };
}
