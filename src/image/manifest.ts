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
import { InvalidInputError, NotInSourceError } from "../errors.ts";
import { DEFAULT_MAX_KEYS, DEFAULT_MAX_LAYERS } from "./limits.ts";
export { describeIgnored } from "./ignored.ts";

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
  /**
   * Other keys under the image's prefix: counted, a few named (the first in key order), and
   * otherwise ignored. Not kept whole: a listing of a million junk keys costs no memory.
   */
  ignored: IgnoredKeys;
}

/** Keys of a listing that are not layers. */
export interface IgnoredKeys {
  count: number;
  /** At most {@linkcode IGNORED_EXAMPLES} of them, in key order. */
  examples: string[];
}

/** Options for {@linkcode buildManifest}. */
export interface ManifestOptions {
  /** Refuse images with more layers than this (default {@linkcode DEFAULT_MAX_LAYERS}). */
  maxLayers?: number;
  /** Refuse a listing with more keys than this (default {@linkcode DEFAULT_MAX_KEYS}). */
  maxKeys?: number;
}

export { DEFAULT_MAX_KEYS, DEFAULT_MAX_LAYERS };

/** How many ignored keys a manifest names. */
export const IGNORED_EXAMPLES = 3;

const LAYER_KEY = /^[1-9][0-9]*\.tar$/;
/** Anything that starts like a layer name but is not one exactly: `01.tar`, `1.TAR`, `1.tar/`. */
const LAYER_LIKE = /^[0-9]+\.tar/i;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Judge the listing of `prefix` (which ends in `/`, e.g. `images/golang/`) as image `image`.
 *
 * Throws {@linkcode NotInSourceError} (exit 69) when nothing is under `prefix`, and
 * {@linkcode InvalidInputError} (exit 65), naming the offending key, for: no layers, a
 * gap in the numbering, a malformed layer name, more layers than `maxLayers`, more keys than
 * `maxKeys`, a key with control characters, or an impossible size. Keys that do not look like
 * layers are counted in `ignored`.
 */
export function buildManifest(
  image: string,
  prefix: string,
  objects: Iterable<ListedObject>,
  options: ManifestOptions = {},
): Manifest {
  const b = new ManifestBuilder(image, prefix, options);
  for (const o of objects) b.add(o);
  return b.finish();
}

/**
 * {@linkcode buildManifest} one object at a time, as a listing arrives: it keeps the layers
 * (at most `maxLayers`) and a count of the rest, so memory stays flat whatever the listing.
 */
export class ManifestBuilder {
  readonly #image: string;
  readonly #prefix: string;
  readonly #maxLayers: number;
  readonly #maxKeys: number;
  readonly #layers: Layer[] = [];
  readonly #layerKeys = new Set<string>();
  readonly #examples: string[] = [];
  #ignored = 0;
  #keys = 0;

  constructor(image: string, prefix: string, options: ManifestOptions = {}) {
    this.#image = image;
    this.#prefix = prefix;
    this.#maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  #refuse(message: string, key?: string): never {
    throw new InvalidInputError(`image ${this.#image}: ${message}`, {
      details: { image: this.#image, ...(key !== undefined ? { key } : {}) },
    });
  }

  /** Judge one listed object. */
  add(obj: ListedObject): void {
    const key = obj.key;
    const prefix = this.#prefix;
    if (++this.#keys > this.#maxKeys) {
      this.#refuse(
        `more than ${this.#maxKeys} keys under ${JSON.stringify(prefix)} (an image has at most ` +
          `${this.#maxLayers} layers): the listing was stopped there; --max-keys raises the limit`,
        prefix,
      );
    }
    if (CONTROL.test(key)) {
      this.#refuse(`key ${JSON.stringify(key)} contains control characters`, key);
    }
    if (!key.startsWith(prefix)) {
      this.#refuse(`key ${JSON.stringify(key)} is outside ${prefix}`, key);
    }
    const name = key.slice(prefix.length);
    if (!LAYER_KEY.test(name)) {
      if (LAYER_LIKE.test(name)) {
        this.#refuse(
          `malformed layer name ${
            JSON.stringify(key)
          }: layers are named N.tar, N a positive integer without leading zeros`,
          key,
        );
      }
      this.#ignore(key);
      return;
    }
    if (this.#layerKeys.has(key)) this.#refuse(`key ${JSON.stringify(key)} is listed twice`, key);
    this.#layerKeys.add(key);
    // Digits beyond the limit's length can only be over the limit; checked before parsing so a
    // 400-digit name never becomes Infinity.
    const maxLayers = this.#maxLayers;
    const index = name.length - 4 > String(maxLayers).length ? Infinity : Number(name.slice(0, -4));
    if (index > maxLayers) {
      this.#refuse(`layer ${JSON.stringify(key)} is beyond the limit of ${maxLayers} layers`, key);
    }
    if (!Number.isSafeInteger(obj.size) || obj.size < 0) {
      this.#refuse(`layer ${JSON.stringify(key)} has an impossible size ${obj.size}`, key);
    }
    if (!obj.etag) this.#refuse(`layer ${JSON.stringify(key)} has no ETag`, key);
    if (CONTROL.test(obj.etag)) {
      this.#refuse(`layer ${JSON.stringify(key)} has a malformed ETag`, key);
    }
    this.#layers.push({
      index,
      key,
      size: obj.size,
      etag: obj.etag,
      lastModified: obj.lastModified,
    });
  }

  #ignore(key: string): void {
    this.#ignored++;
    const ex = this.#examples;
    if (ex.length === IGNORED_EXAMPLES && key >= ex[ex.length - 1]) return;
    ex.push(key);
    ex.sort();
    if (ex.length > IGNORED_EXAMPLES) ex.pop();
  }

  /** The manifest, or the refusal of an image without layers or with a gap. */
  finish(): Manifest {
    const prefix = this.#prefix;
    const layers = this.#layers;
    const ignored = { count: this.#ignored, examples: [...this.#examples] };
    if (layers.length === 0 && ignored.count === 0) {
      // Nothing at all under the prefix: the source does not have this image (README's 69,
      // "missing object"); keys that are there but are not layers are bad input (65).
      throw new NotInSourceError(
        `image ${this.#image} is not in the bucket (no objects under ${
          JSON.stringify(prefix)
        }): check its name with 'thinimage images --remote'`,
        { details: { image: this.#image, key: prefix } },
      );
    }
    if (layers.length === 0) {
      this.#refuse(
        `no layers (N.tar) under ${JSON.stringify(prefix)}; found only ${
          ignored.examples.map((k) => JSON.stringify(k)).join(", ")
        }${
          ignored.count > ignored.examples.length
            ? ` and ${ignored.count - ignored.examples.length} more`
            : ""
        }`,
        prefix,
      );
    }
    layers.sort((a, b) => a.index - b.index);
    for (let i = 0; i < layers.length; i++) {
      if (layers[i].index !== i + 1) {
        const missing = `${prefix}${i + 1}.tar`;
        this.#refuse(
          `gap in the layer numbering: ${JSON.stringify(missing)} is missing before ${
            JSON.stringify(layers[i].key)
          }`,
          missing,
        );
      }
    }
    return { image: this.#image, digest: manifestDigest(layers), layers, ignored };
  }
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
