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
import type {
  BlobPort,
  CataloguePort,
  DevicePort,
  ImageEffects,
  RunPort,
  SayPort,
  SourcePort,
} from "./effects.ts";
import { type LayerStages, runLayerPipeline } from "../image/pipeline.ts";
import type { ImageRecord } from "../image/catalogue.ts";
import type { Layer, Manifest } from "../image/manifest.ts";
import { describeIgnored } from "../image/ignored.ts";
import { chainId as chainIdOf } from "../image/chain.ts";
import { chainDeviceName, MACHINE } from "../names.ts";
import { NotInSourceError, SourceUnavailableError, ThinimageError } from "../errors.ts";

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
export function blobMachine(fx: BlobPort & SayPort) {
  return machine<BlobRequest, BlobResponse>(MACHINE.blob, { retry: IMAGE_RETRY })
    .start("download", async ({ request, signal }) => {
      const label = fx.progress(`fetch ${request.layer.key}`);
      const b = await fx.fetchBlob(request.layer, signal, label);
      return { sha256: b.sha256, size: b.size, downloaded: b.downloaded };
    })
    .end("stored");
}

/** The `chain` machine: make one chain device and fill it with its layer, once. */
export function chainMachine(fx: CataloguePort & DevicePort & SayPort) {
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
    .start("resolve", ({ request, signal }) => resolveStep(fx, request.image, signal))
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
      const layers = await runLayerPipeline(
        manifest.layers,
        layerStages(fx, blob, chain, request.image, signal),
        signal,
      );
      const topChain = layers.at(-1)?.chainId;
      fx.catalog.markReady(request.image, topChain!);
      return { ...res, layers, topChain };
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

/**
 * The `resolve` step: the image's listing recorded in the catalogue, or the catalogue's own
 * copy when offline (asked, or the source unreachable and the image pulled before).
 */
async function resolveStep(
  fx: CataloguePort & SourcePort & SayPort,
  image: string,
  signal: AbortSignal,
): Promise<PullResponse> {
  const known = fx.catalog.getImage(image);
  let manifest: Manifest | undefined;
  let offline = false;
  if (fx.offline) {
    offline = true;
  } else {
    try {
      manifest = await fx.resolve(image, signal);
    } catch (err) {
      // Unreachable: the local copy stands in. Answered "no such image": it does not.
      if (
        !(err instanceof SourceUnavailableError) || err instanceof NotInSourceError ||
        known?.state !== "ready"
      ) throw err;
      fx.warn(`source unreachable; using the local copy of ${image}`, { error: err.message });
      offline = true;
    }
  }
  if (offline) {
    if (known?.state !== "ready") {
      throw new SourceUnavailableError(
        fx.offline
          ? `${image} is not pulled here, and --pull never (or --offline) keeps off ` +
            `the network: run 'thinimage pull ${image}' first`
          : `${image} is not pulled here and the source is unreachable`,
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
    image,
    manifestDigest: manifest!.digest,
    layers: manifest!.layers.map((l) => ({ index: l.index, key: l.key, size: l.size })),
  };
}

/**
 * What the pipeline's stages are for a pull: a `blob` run per layer; the chain id recorded and
 * the layer validated (unless its chain is sealed already); a `chain` run per chain not sealed.
 */
function layerStages(
  fx: CataloguePort & BlobPort & RunPort,
  blob: ReturnType<typeof blobMachine>,
  chain: ReturnType<typeof chainMachine>,
  image: string,
  signal: AbortSignal,
): LayerStages<Layer, BlobResponse, PulledLayer, PulledLayer> {
  return {
    limit: DOWNLOADS_IN_FLIGHT,
    fetch: (l) => fx.child(blob, `${l.etag}:${l.size}`, { layer: l }, signal),
    async prepare(l, b, below, checking) {
      // The chain id needs the blobs below: hence one layer after the other.
      const chainId = await chainIdOf(below?.chainId, b.sha256);
      fx.catalog.setLayerDigests(image, [{ idx: l.index, sha256: b.sha256, chainId }]);
      if (fx.catalog.getChain(chainId)?.state !== "sealed") {
        await fx.validateBlob(b.sha256, checking);
      }
      const { index, key, size } = l;
      return { index, key, size, sha256: b.sha256, downloaded: b.downloaded, chainId };
    },
    async unpack(l, below) {
      const sealed = fx.catalog.getChain(l.chainId!)?.state === "sealed";
      // A sealed chain whose run is still active was sealed by a process that died before
      // the run finished: joining the run takes it over and closes it.
      if (sealed && !fx.hasActiveRun(chain.name, l.chainId!)) return { ...l, unpacked: false };
      const c = await fx.child(chain, l.chainId!, {
        chainId: l.chainId!,
        parentChainId: below?.chainId ?? null,
        layerSha256: l.sha256!,
        image,
        key: l.key,
      }, signal);
      return { ...l, unpacked: c.unpacked };
    },
  };
}
