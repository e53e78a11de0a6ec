/**
 * From a bucket listing to an image's {@linkcode Manifest}: its layers in numeric order, with
 * the refusals that keep a malformed or hostile listing from becoming an image. Pure: the
 * caller lists; this module only judges.
 *
 * @example
 * ```ts
 * import { buildManifest } from "./manifest.ts";
 * const m = buildManifest("node", "images/node/", [
 *   { key: "images/node/2.tar", size: 20, etag: "b", lastModified: "2024-01-01T00:00:00Z" },
 *   { key: "images/node/1.tar", size: 10, etag: "a", lastModified: "2024-01-01T00:00:00Z" },
 * ]);
 * m.layers.map((l) => l.index); // [1, 2]
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import { InvalidInputError } from "../errors.ts";

/** One object of a listing, as the source reports it. */
export interface ListedObject {
  /** The full key. */
  key: string;
  /** Bytes. */
  size: number;
  /** The ETag without quotes (an MD5 for single-part uploads). */
  etag: string;
  /** ISO 8601. */
  lastModified: string;
}

/** One layer of an image: the object `N.tar`, applied N-th. */
export interface Layer extends ListedObject {
  /** N, from 1. */
  index: number;
}

/** An image as listed: its layers in the order they are applied. */
export interface Manifest {
  /** The image name. */
  image: string;
  /** `sha256:<hex>` over the ordered (key, size, etag): equal digests mean an unchanged image. */
  digest: string;
  /** Layers 1..n, in order. */
  layers: Layer[];
  /** Other keys under the image's prefix, reported and otherwise ignored. */
  ignored: string[];
}

/** Options for {@linkcode buildManifest}. */
export interface ManifestOptions {
  /** Refuse images with more layers than this (default {@linkcode DEFAULT_MAX_LAYERS}). */
  maxLayers?: number;
}

/** The default layer limit: Docker's overlay driver stops at 128 layers as well. */
export const DEFAULT_MAX_LAYERS = 128;

const LAYER_KEY = /^[1-9][0-9]*\.tar$/;
/** Anything that starts like a layer name but is not one exactly: `01.tar`, `1.TAR`, `1.tar/`. */
const LAYER_LIKE = /^[0-9]+\.tar/i;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Judge the listing of `prefix` (which ends in `/`, e.g. `images/golang/`) as image `image`.
 *
 * Throws {@linkcode InvalidInputError} (exit 65), naming the offending key, for: no layers, a
 * gap in the numbering, a malformed layer name, more layers than `maxLayers`, a key with
 * control characters, or an impossible size. Keys that do not look like layers are returned
 * in `ignored`.
 */
export function buildManifest(
  image: string,
  prefix: string,
  objects: readonly ListedObject[],
  options: ManifestOptions = {},
): Manifest {
  const maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
  const refuse = (message: string, key?: string): never => {
    throw new InvalidInputError(`image ${image}: ${message}`, {
      details: { image, ...(key !== undefined ? { key } : {}) },
    });
  };
  const layers: Layer[] = [];
  const ignored: string[] = [];
  const seen = new Set<string>();
  for (const obj of objects) {
    const key = obj.key;
    if (CONTROL.test(key)) refuse(`key ${JSON.stringify(key)} contains control characters`, key);
    if (!key.startsWith(prefix)) refuse(`key ${JSON.stringify(key)} is outside ${prefix}`, key);
    if (seen.has(key)) refuse(`key ${JSON.stringify(key)} is listed twice`, key);
    seen.add(key);
    const name = key.slice(prefix.length);
    if (!LAYER_KEY.test(name)) {
      if (LAYER_LIKE.test(name)) {
        refuse(
          `malformed layer name ${
            JSON.stringify(key)
          }: layers are named N.tar, N a positive integer without leading zeros`,
          key,
        );
      }
      ignored.push(key);
      continue;
    }
    // Digits beyond the limit's length can only be over the limit; checked before parsing so a
    // 400-digit name never becomes Infinity.
    const index = name.length - 4 > String(maxLayers).length ? Infinity : Number(name.slice(0, -4));
    if (index > maxLayers) {
      refuse(`layer ${JSON.stringify(key)} is beyond the limit of ${maxLayers} layers`, key);
    }
    if (!Number.isSafeInteger(obj.size) || obj.size < 0) {
      refuse(`layer ${JSON.stringify(key)} has an impossible size ${obj.size}`, key);
    }
    if (!obj.etag) refuse(`layer ${JSON.stringify(key)} has no ETag`, key);
    if (CONTROL.test(obj.etag)) refuse(`layer ${JSON.stringify(key)} has a malformed ETag`, key);
    layers.push({ index, key, size: obj.size, etag: obj.etag, lastModified: obj.lastModified });
  }
  if (layers.length === 0) {
    refuse(
      ignored.length === 0
        ? `no objects under ${JSON.stringify(prefix)}`
        : `no layers (N.tar) under ${JSON.stringify(prefix)}; found only ${
          ignored.slice(0, 3).map((k) => JSON.stringify(k)).join(", ")
        }`,
      prefix,
    );
  }
  layers.sort((a, b) => a.index - b.index);
  for (let i = 0; i < layers.length; i++) {
    if (layers[i].index !== i + 1) {
      const missing = `${prefix}${i + 1}.tar`;
      refuse(
        `gap in the layer numbering: ${JSON.stringify(missing)} is missing before ${
          JSON.stringify(layers[i].key)
        }`,
        missing,
      );
    }
  }
  return { image, digest: manifestDigest(layers), layers, ignored: ignored.sort() };
}

/**
 * `sha256:<hex>` over the ordered (key, size, etag) of `layers`. Keys and ETags never hold
 * control characters (refused above), so newline-separated fields cannot be confused.
 */
export function manifestDigest(layers: readonly Pick<Layer, "key" | "size" | "etag">[]): string {
  const h = createHash("sha256");
  for (const l of layers) h.update(`${l.key}\n${l.size}\n${l.etag}\n`);
  return `sha256:${h.digest("hex")}`;
}

/** The sum of the layers' sizes. */
export function manifestSize(manifest: Manifest): number {
  return manifest.layers.reduce((n, l) => n + l.size, 0);
}
