/**
 * Fetching a whole image: resolve it, then make sure every layer's blob is stored, in layer
 * order and a bounded number at once, as a pull downloads them. When an object changes while
 * it downloads, the image is resolved again and fetching starts over with the new listing
 * (bounded), so the result always matches one consistent manifest.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { BlobStore } from "../blobs/store.ts";
 * import { createSource } from "./source.ts";
 * import { fetchImage } from "./fetch_image.ts";
 * const blobs = new BlobStore("/var/lib/thinimage", openStore("/var/lib/thinimage/thinimage.db"));
 * const { manifest, layers } = await fetchImage(createSource(), blobs, "python");
 * console.log(manifest.digest, layers.filter((l) => l.downloaded).length);
 * ```
 * @module
 */
import type { BlobStore } from "../blobs/store.ts";
import type { Layer, Manifest } from "../image/manifest.ts";
import { allInOrder } from "../image/pipeline.ts";
import { ObjectChangedError } from "../s3/errors.ts";
import { type FetchedLayer, fetchLayer, type FetchLayerOptions } from "./fetch_layer.ts";
import { resolveImage, type ResolveOptions } from "./resolve.ts";
import type { ObjectSource } from "./source.ts";

/** Options for {@linkcode fetchImage}. */
export interface FetchImageOptions extends Omit<FetchLayerOptions, "onProgress">, ResolveOptions {
  /** Layers downloaded at once (default 2). */
  concurrency?: number;
  /** How often to resolve again after an object changed (default 3). */
  resolveAttempts?: number;
  /** Called as bytes arrive, per layer. */
  onProgress?: (layer: Layer, bytes: number, total: number) => void;
  /** Called once the manifest is known (and again after a re-resolve). */
  onManifest?: (manifest: Manifest) => void;
}

/** One fetched layer of an image. */
export interface FetchedImageLayer extends FetchedLayer {
  key: string;
  index: number;
}

/** The outcome of {@linkcode fetchImage}. */
export interface FetchedImage {
  manifest: Manifest;
  /** In layer order. */
  layers: FetchedImageLayer[];
}

/** Resolve `image` and store every layer's blob; see the module doc for the guarantees. */
export async function fetchImage(
  source: ObjectSource,
  blobs: BlobStore,
  image: string,
  opts: FetchImageOptions = {},
): Promise<FetchedImage> {
  const rounds = opts.resolveAttempts ?? 3;
  await blobs.removeStaleTemps();
  for (let round = 1;; round++) {
    const manifest = await resolveImage(source, image, opts);
    opts.onManifest?.(manifest);
    try {
      const layers = await allInOrder(manifest.layers, opts.concurrency ?? 2, async (layer) => {
        const r = await fetchLayer(source, blobs, layer, {
          ...opts,
          onProgress: opts.onProgress ? (b, t) => opts.onProgress!(layer, b, t) : undefined,
        });
        return { key: layer.key, index: layer.index, ...r };
      });
      return { manifest, layers };
    } catch (err) {
      if (!(err instanceof ObjectChangedError) || round >= rounds) throw err;
    }
  }
}
