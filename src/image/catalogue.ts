/**
 * What the image catalogue records (images with their layers, layer chains, activations) and
 * what the image machines ask of it ({@linkcode Catalogue}). The records are plain data; the
 * SQLite tables behind them are `src/store/catalog.ts` (`./memory_catalogue.ts` keeps them in
 * memory, for tests), so the machines see the catalogue only through this interface.
 *
 * @example
 * ```ts
 * import type { Catalogue } from "./catalogue.ts";
 * function isPulled(catalogue: Catalogue, image: string): boolean {
 *   return catalogue.getImage(image)?.state === "ready";
 * }
 * ```
 * @module
 */

/** The manifest fields the catalogue keeps (a subset of the retrieval module's Manifest). */
export interface CatalogManifest {
  image: string;
  digest: string;
  layers: { index: number; key: string; size: number; etag: string }[];
}

/** An image row with its layers. */
export interface ImageRecord {
  name: string;
  manifestDigest: string;
  manifest: CatalogManifest;
  state: "pulling" | "ready" | "failed";
  topChain: string | null;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  layers: LayerRecord[];
}

/** One layer of an image: `sha256` and `chainId` are known once fetched. */
export interface LayerRecord {
  idx: number;
  key: string;
  size: number;
  etag: string;
  sha256: string | null;
  chainId: string | null;
}

/** A layer chain and its device. */
export interface ChainRecord {
  chainId: string;
  parentChainId: string | null;
  layerSha256: string;
  device: string;
  state: "applying" | "sealed";
  unpackedBytes: number | null;
  createdAt: number;
  sealedAt: number | null;
}

/** An activation: a thin snapshot of an image's top chain, handed out as a device. */
export interface ActivationRecord {
  name: string;
  image: string;
  manifestDigest: string;
  chainId: string;
  device: string;
  createdAt: number;
}

/** The catalogue as the image machines use it. */
export interface Catalogue {
  /**
   * Record `manifest` for its image. An unchanged digest keeps the row (and its state); a new
   * or changed one replaces the layers and puts the image back to 'pulling'. Returns the row.
   */
  recordManifest(manifest: CatalogManifest): ImageRecord;
  /** Record the digests and chain ids of some of an image's layers, once known. */
  setLayerDigests(image: string, layers: { idx: number; sha256: string; chainId: string }[]): void;
  /** The image is complete: `topChain` holds all its layers. */
  markReady(image: string, topChain: string): void;
  /** The pull of `image` failed with `error`. */
  markFailed(image: string, error: string): void;
  getImage(name: string): ImageRecord | undefined;
  getChain(chainId: string): ChainRecord | undefined;
  /** Record that a chain's device is being made (idempotent; a sealed chain is left alone). */
  beginChain(
    c: { chainId: string; parentChainId: string | null; layerSha256: string; device: string },
  ): ChainRecord;
  /** The chain's device holds its layer: it is never written again. */
  sealChain(chainId: string, unpackedBytes: number): void;
  getActivation(name: string): ActivationRecord | undefined;
  addActivation(a: Omit<ActivationRecord, "createdAt">): ActivationRecord;
  deleteActivation(name: string): void;
}
