/**
 * Resolving an image: one listing of its prefix (every page) judged into a
 * {@linkcode Manifest}; and the bucket-wide listing behind `images --remote`.
 *
 * @example
 * ```ts
 * import { createSource } from "./source.ts";
 * import { resolveImage } from "./resolve.ts";
 * const manifest = await resolveImage(createSource(), "golang");
 * console.log(manifest.digest, manifest.layers.length);
 * ```
 * @module
 */
import { isImageName, parseImageName } from "../image/name.ts";
import {
  buildManifest,
  type ListedObject,
  type Manifest,
  manifestSize,
} from "../image/manifest.ts";
import type { ObjectSource } from "./source.ts";

/** Options for {@linkcode resolveImage}. */
export interface ResolveOptions {
  signal?: AbortSignal;
  /** Refuse images with more layers (default 128). */
  maxLayers?: number;
  /** Keys per listing page (default: the server's, 1000 on S3). */
  pageSize?: number;
}

/**
 * List `images/NAME/` and build the image's manifest. Throws InvalidInputError (65) for a bad
 * name or listing, SourceUnavailableError (69) when the bucket cannot be listed.
 */
export async function resolveImage(
  source: ObjectSource,
  image: string,
  opts: ResolveOptions = {},
): Promise<Manifest> {
  const name = parseImageName(image);
  const prefix = `${source.prefix}${name}/`;
  const objects: ListedObject[] = [];
  for await (const o of source.list(prefix, { pageSize: opts.pageSize, signal: opts.signal })) {
    objects.push(o);
  }
  return buildManifest(name, prefix, objects, { maxLayers: opts.maxLayers });
}

/** One image of a bucket listing: its size, or why it is not a valid image. */
export interface RemoteImage {
  image: string;
  /** Layer count (0 when invalid). */
  layers: number;
  /** Bytes of all layers. */
  size: number;
  /** The manifest digest, when valid. */
  digest?: string;
  /** Why the image would be refused, when it would be. */
  error?: string;
}

/** Every image under the source's prefix, from one listing, sorted by name. */
export async function listRemoteImages(
  source: ObjectSource,
  opts: ResolveOptions = {},
): Promise<RemoteImage[]> {
  const groups = new Map<string, ListedObject[]>();
  for await (
    const o of source.list(source.prefix, { pageSize: opts.pageSize, signal: opts.signal })
  ) {
    const rest = o.key.slice(source.prefix.length);
    const slash = rest.indexOf("/");
    if (slash <= 0) continue; // not inside an image directory
    const name = rest.slice(0, slash);
    let list = groups.get(name);
    if (!list) groups.set(name, list = []);
    list.push(o);
  }
  const out: RemoteImage[] = [];
  for (const [name, objects] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!isImageName(name)) {
      out.push({
        image: name,
        layers: 0,
        size: 0,
        error: `invalid image name ${JSON.stringify(name)}`,
      });
      continue;
    }
    try {
      const m = buildManifest(name, `${source.prefix}${name}/`, objects, {
        maxLayers: opts.maxLayers,
      });
      out.push({ image: name, layers: m.layers.length, size: manifestSize(m), digest: m.digest });
    } catch (err) {
      out.push({ image: name, layers: 0, size: 0, error: (err as Error).message });
    }
  }
  return out;
}
