/**
 * The pull of an image as durable state machines: resolve the manifest, then fetch, validate
 * and unpack its layers as a pipeline, reusing every chain that already exists. Three machines:
 *
 * - `pull` (one run per image): `resolve`, then `layers`, then `ready`. `layers` downloads the
 *   blobs in layer order, at most {@linkcode DOWNLOADS_IN_FLIGHT} at once, and unpacks layer i
 *   as soon as blobs 1..i are stored and layer i is validated, while later blobs still
 *   download. Layers are validated one after the other, each before its chain is started: a
 *   hostile layer 3 fails the pull with layers 1-2 unpacked (sealed chains, usable by other
 *   images) and nothing made for layers 3 and after.
 * - `blob` (one run per S3 object, by ETag and size): download and verify into the blob store.
 * - `chain` (one run per chain id): snapshot the parent's device (or make the base device),
 *   apply the layer, seal.
 *
 * Because `blob` and `chain` runs are single flight per resource, two processes pulling
 * images that share layers download each blob once and unpack each chain once: the second
 * waits for the first's run (or takes it over when the first process died).
 *
 * Every transition is idempotent: it looks at what exists before acting, and a chain device
 * whose filling was interrupted is thrown away and made again from its parent.
 *
 * @example
 * ```ts
 * import { chainMachine, blobMachine, pullMachine } from "./pull.ts";
 * // engine.register(pullMachine(effects)).register(blobMachine(effects)).register(chainMachine(effects));
 * // const run = await engine.start(pullMachine(effects), "golang", { image: "golang" });
 * ```
 * @module
 */
import { machine } from "../engine/machine.ts";
import type { ImageEffects } from "./effects.ts";
import type { ImageRecord } from "../store/catalog.ts";
import type { Layer, Manifest } from "../image/manifest.ts";
import { describeIgnored } from "../image/ignored.ts";
import { chainDeviceName, chainId as chainIdOf } from "../image/chain.ts";
import { NotInSourceError, SourceUnavailableError, ThinimageError } from "../errors.ts";
import { MACHINE } from "./names.ts";

/** What `pull` is asked. */
export interface PullRequest {
  image: string;
}

/** One layer as the pull knows it. */
export interface PulledLayer {
  index: number;
  key: string;
  size: number;
  sha256?: string;
  chainId?: string;
  /** True when this pull downloaded the blob. */
  downloaded?: boolean;
  /** True when this pull unpacked the chain (false: it existed). */
  unpacked?: boolean;
}

/** What `pull` hands from one transition to the next, and returns. */
export interface PullResponse {
  image: string;
  manifestDigest: string;
  layers: PulledLayer[];
  /** The top chain, once every layer is unpacked. */
  topChain?: string;
  /** True when the manifest came from the local catalogue because the source was unreachable. */
  offline?: boolean;
}

/** What `blob` is asked: the object to store. */
export interface BlobRequest {
  layer: Layer;
}

/** What `blob` returns. */
export interface BlobResponse {
  sha256: string;
  size: number;
  downloaded: boolean;
}

/** What `chain` is asked: one link of a layer chain. */
export interface ChainRequest {
  chainId: string;
  parentChainId: string | null;
  layerSha256: string;
  /** For messages: which image and layer asked first. */
  image: string;
  key: string;
}

/** What `chain` returns. */
export interface ChainResponse {
  device: string;
  unpackedBytes?: number;
  /** True when this run made the chain (false: it was sealed already). */
  unpacked: boolean;
}

/**
 * Retries of the image machines: attempts are counted across processes, and a download or an
 * apply may take minutes, so the engine's one-minute bound is too tight.
 */
export const IMAGE_RETRY = { maxAttempts: 8, maxElapsedMs: 60 * 60_000 } as const;

/**
 * A transition that only waits on child runs is interrupted whenever its process dies while
 * a child works: those deaths are the children's to count (each child has its own bound).
 */
export const ORCHESTRATION_RETRY = { retry: { maxAttempts: 1000 } } as const;

/** The `blob` machine: one download per object, whoever asks. */
export function blobMachine(fx: ImageEffects) {
  return machine<BlobRequest, BlobResponse>(MACHINE.blob, { retry: IMAGE_RETRY })
    .start("download", async ({ request, signal }) => {
      const label = fx.progress(`fetch ${request.layer.key}`);
      const b = await fx.fetchBlob(request.layer, signal, label);
      return { sha256: b.sha256, size: b.size, downloaded: b.downloaded };
    })
    .end("stored");
}

/** The `chain` machine: make one chain device and fill it with its layer, once. */
export function chainMachine(fx: ImageEffects) {
  const fresh = async (req: ChainRequest): Promise<string> => {
    const device = chainDeviceName(req.chainId);
    // Whatever is on a device that was never sealed is incomplete: start again from the parent.
    if (await fx.deviceExists(device)) await fx.removeDevice(device);
    if (req.parentChainId === null) {
      await fx.createBaseDevice(device);
    } else {
      const parent = fx.catalog.getChain(req.parentChainId);
      if (parent?.state !== "sealed") {
        throw new ThinimageError(
          `chain ${req.chainId}: parent chain ${req.parentChainId} is not sealed`,
        );
      }
      await fx.createSnapshot(device, parent.device);
    }
    return device;
  };
  return machine<ChainRequest, ChainResponse>(MACHINE.chain, { retry: IMAGE_RETRY })
    .start("snapshot", async ({ request }) => {
      const c = fx.catalog.beginChain({
        chainId: request.chainId,
        parentChainId: request.parentChainId,
        layerSha256: request.layerSha256,
        device: chainDeviceName(request.chainId),
      });
      if (c.state === "sealed") return { device: c.device, unpacked: false };
      return { device: await fresh(request), unpacked: true };
    })
    .to("apply", async ({ request, response, restarted, attempt, signal }) => {
      if (!response!.unpacked) return response!;
      // A retry or a restart may find the device half-filled: make it again first.
      const device = restarted || attempt > 1 ? await fresh(request) : response!.device;
      const label = fx.progress(`unpack ${request.key}`);
      const { unpackedBytes } = await fx.applyLayer(device, request.layerSha256, signal, label);
      return { ...response!, unpackedBytes };
    })
    .to("seal", ({ request, response }) => {
      if (response!.unpacked) fx.catalog.sealChain(request.chainId, response!.unpackedBytes ?? 0);
      return Promise.resolve(response!);
    })
    .end("sealed");
}

/** At most this many blobs of one pull download at once, in layer order. */
export const DOWNLOADS_IN_FLIGHT = 2;

/**
 * `fetch` over `layers` in their order, at most `limit` at once: one promise per layer. After
 * a failure or `stop()`, no more start and those not started reject; `settled` resolves once
 * none is running.
 */
function downloads<T>(layers: readonly Layer[], limit: number, fetch: (l: Layer) => Promise<T>) {
  const results = layers.map(() => Promise.withResolvers<T>());
  // Each is awaited in its turn, or never when the pull stops before it.
  for (const r of results) r.promise.catch(() => {});
  let next = 0;
  const stop = () => {
    for (; next < layers.length; next++) results[next].reject(new Error("download not started"));
  };
  const worker = async () => {
    while (next < layers.length) {
      const i = next++;
      try {
        results[i].resolve(await fetch(layers[i]));
      } catch (err) {
        results[i].reject(err);
        stop();
      }
    }
  };
  const settled = Promise.all(Array.from({ length: Math.min(limit, layers.length) }, worker));
  return { blobs: results.map((r) => r.promise), stop, settled };
}

function fromCatalog(img: ImageRecord): PullResponse {
  return {
    image: img.name,
    manifestDigest: img.manifestDigest,
    layers: img.layers.map((l) => ({
      index: l.idx,
      key: l.key,
      size: l.size,
      sha256: l.sha256 ?? undefined,
      chainId: l.chainId ?? undefined,
      downloaded: false,
      unpacked: false,
    })),
    topChain: img.topChain ?? undefined,
  };
}

/**
 * The `pull` machine: from an image name to a sealed top chain. `blob` and `chain` must be the
 * very machines registered with the engine that runs it.
 */
export function pullMachine(
  fx: ImageEffects,
  blob: ReturnType<typeof blobMachine>,
  chain: ReturnType<typeof chainMachine>,
) {
  return machine<PullRequest, PullResponse>(MACHINE.pull, { retry: IMAGE_RETRY })
    .start("resolve", async ({ request, signal }) => {
      const known = fx.catalog.getImage(request.image);
      let manifest: Manifest | undefined;
      let offline = false;
      if (fx.offline) {
        offline = true;
      } else {
        try {
          manifest = await fx.resolve(request.image, signal);
        } catch (err) {
          // Unreachable: the local copy stands in. Answered "no such image": it does not.
          if (
            !(err instanceof SourceUnavailableError) || err instanceof NotInSourceError ||
            known?.state !== "ready"
          ) throw err;
          fx.warn(`source unreachable; using the local copy of ${request.image}`, {
            error: err.message,
          });
          offline = true;
        }
      }
      if (offline) {
        if (known?.state !== "ready") {
          throw new SourceUnavailableError(
            fx.offline
              ? `${request.image} is not pulled here, and --pull never (or --offline) keeps off ` +
                `the network: run 'thinimage pull ${request.image}' first`
              : `${request.image} is not pulled here and the source is unreachable`,
          );
        }
        return { ...fromCatalog(known), offline: true };
      }
      // One line, whatever the count: a prefix stuffed with junk must not flood stderr.
      const ignored = describeIgnored(manifest!);
      if (ignored) fx.warn(ignored);
      const rec = fx.catalog.recordManifest(manifest!);
      if (rec.state === "ready" && rec.topChain) {
        // Unchanged and complete: nothing to fetch or unpack.
        return { ...fromCatalog(rec), offline: false };
      }
      return {
        image: request.image,
        manifestDigest: manifest!.digest,
        layers: manifest!.layers.map((l) => ({ index: l.index, key: l.key, size: l.size })),
      };
    })
    // One step, not fetch, validate and unpack: a step ends before the next begins, so
    // downloads can overlap unpacking only inside one. Nothing in it needs its own resume
    // point either: each download and each chain is a durable child run, so a rerun after a
    // crash replays the step cheaply (blob runs find their blobs stored, chain runs find
    // their chains sealed, and a run cut short is taken over), with nothing to carry over.
    .to("layers", async ({ request, response, signal }) => {
      const res = response!;
      if (res.topChain) return res;
      if (res.offline) {
        throw new SourceUnavailableError(
          `${request.image} has no top chain and the pull is offline`,
        );
      }
      const manifest = fx.catalog.getImage(request.image)!.manifest as Manifest;
      // The listing says how many bytes are coming: a pool too small hears so now, not after
      // the downloads.
      await fx.checkRoom(request.image, manifest.layers);
      const fetching = downloads(
        manifest.layers,
        DOWNLOADS_IN_FLIGHT,
        (l) => fx.child(blob, `${l.etag}:${l.size}`, { layer: l }, signal),
      );
      // Validation is aborted once the step fails: nothing of it is kept.
      const failed = new AbortController();
      const checking = AbortSignal.any([signal, failed.signal]);
      // Layer i is checked after layer i-1 and only once its blob and those before it are
      // stored: its chain id needs them, and a refused layer must stop every check after it.
      const prepared: Promise<PulledLayer>[] = [];
      for (const [i, l] of manifest.layers.entries()) {
        const previous = prepared[i - 1];
        const p = (async (): Promise<PulledLayer> => {
          const below = await previous;
          const b = await fetching.blobs[i];
          const chainId = await chainIdOf(below?.chainId, b.sha256);
          fx.catalog.setLayerDigests(request.image, [{ idx: l.index, sha256: b.sha256, chainId }]);
          if (fx.catalog.getChain(chainId)?.state !== "sealed") {
            await fx.validateBlob(b.sha256, checking);
          }
          return {
            index: l.index,
            key: l.key,
            size: l.size,
            sha256: b.sha256,
            downloaded: b.downloaded,
            chainId,
          };
        })();
        p.catch(() => fetching.stop()); // a refused or missing layer: start no more downloads
        prepared.push(p);
      }
      try {
        const layers: PulledLayer[] = [];
        let parent: string | null = null;
        for (const ready of prepared) {
          const l = await ready;
          const sealed = fx.catalog.getChain(l.chainId!)?.state === "sealed";
          let unpacked = false;
          // A sealed chain whose run is still active was sealed by a process that died before
          // the run finished: joining the run takes it over and closes it.
          if (!sealed || fx.hasActiveRun(chain.name, l.chainId!)) {
            const c = await fx.child(chain, l.chainId!, {
              chainId: l.chainId!,
              parentChainId: parent,
              layerSha256: l.sha256!,
              image: request.image,
              key: l.key,
            }, signal);
            unpacked = c.unpacked;
          }
          layers.push({ ...l, unpacked });
          parent = l.chainId!;
        }
        fx.catalog.markReady(request.image, parent!);
        return { ...res, layers, topChain: parent! };
      } catch (err) {
        failed.abort(err);
        throw err;
      } finally {
        // Downloads in flight are let finish rather than aborted: an interrupted blob run
        // stays active until someone asks for that blob again, and gc refuses to run while
        // any run is active. The pull's own signal still interrupts them at once.
        fetching.stop();
        await Promise.allSettled([fetching.settled, ...prepared]);
      }
    }, ORCHESTRATION_RETRY)
    .end("ready", {
      finalizers: [({ status, error, request }) => {
        if (status === "failed") {
          const img = fx.catalog.getImage(request.image);
          if (img && img.state !== "ready") {
            fx.catalog.markFailed(request.image, (error as Error)?.message ?? String(error));
          }
        }
      }],
    });
}
