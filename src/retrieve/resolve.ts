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
import { isName, parseImageName } from "../names.ts";
import { type Manifest, ManifestBuilder, manifestSize } from "../image/manifest.ts";
import type { ObjectSource } from "./source.ts";
import { DEFAULT_MAX_PAGES } from "./defaults.ts";

/** Options for {@linkcode resolveImage}. */
export interface ResolveOptions {
  signal?: AbortSignal;
  /** Refuse images with more layers (default 128). */
  maxLayers?: number;
  /** Keys per listing page (default: the server's, 1000 on S3). */
  pageSize?: number;
  /** Refuse a listing of more pages (default: the source's limit, else 100). */
  maxPages?: number;
  /** Refuse more keys under one image's prefix (default: the source's, else 10,000). */
  maxKeys?: number;
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
  // Judged as it arrives, page by page: memory stays flat and the key limit stops a junk
  // listing after a few pages.
  const manifest = new ManifestBuilder(name, prefix, {
    maxLayers: opts.maxLayers,
    maxKeys: opts.maxKeys ?? source.limits?.maxKeys,
  });
  for await (
    const o of source.list(prefix, {
      pageSize: opts.pageSize,
      signal: opts.signal,
      maxPages: opts.maxPages ?? source.limits?.maxPages ?? DEFAULT_MAX_PAGES,
    })
  ) {
    manifest.add(o);
  }
  return manifest.finish();
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

/**
 * Every image under the source's prefix, from one listing, sorted by name. Each image's keys
 * are judged as they arrive (a builder per image: its layers and a count of the rest); the
 * listing is bounded by the page limit, and an image by the key limit (it is then reported
 * as refused, and its further keys skipped).
 */
export async function listRemoteImages(
  source: ObjectSource,
  opts: ResolveOptions = {},
): Promise<RemoteImage[]> {
  const groups = new Map<string, ManifestBuilder | { error: string }>();
  for await (
    const o of source.list(source.prefix, {
      pageSize: opts.pageSize,
      signal: opts.signal,
      maxPages: opts.maxPages ?? source.limits?.maxPages ?? DEFAULT_MAX_PAGES,
    })
  ) {
    const rest = o.key.slice(source.prefix.length);
    const slash = rest.indexOf("/");
    if (slash <= 0) continue; // not inside an image directory
    const name = rest.slice(0, slash);
    let group = groups.get(name);
    if (!group) {
      group = isName("image", name)
        ? new ManifestBuilder(name, `${source.prefix}${name}/`, {
          maxLayers: opts.maxLayers,
          maxKeys: opts.maxKeys ?? source.limits?.maxKeys,
        })
        : { error: `invalid image name ${JSON.stringify(name)}` };
      groups.set(name, group);
    }
    if (!(group instanceof ManifestBuilder)) continue;
    try {
      group.add(o);
    } catch (err) {
      groups.set(name, { error: (err as Error).message });
    }
  }
  const out: RemoteImage[] = [];
  for (const [name, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    try {
      if (!(group instanceof ManifestBuilder)) throw new Error(group.error);
      const m = group.finish();
      out.push({ image: name, layers: m.layers.length, size: manifestSize(m), digest: m.digest });
    } catch (err) {
      out.push({ image: name, layers: 0, size: 0, error: (err as Error).message });
    }
  }
  return out;
}
