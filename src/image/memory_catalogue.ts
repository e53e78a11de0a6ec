/**
 * A {@linkcode Catalogue} in memory, with the semantics of SQLite's `Catalog`
 * (`src/store/catalog.ts`), its table checks included: a device belongs to one chain and one
 * activation, a new manifest digest resets the image's layers, and records handed out are
 * copies. Pure (no I/O): for tests of the image machines that need no database.
 * `tests/image/catalogue_test.ts` runs one contract against both catalogues.
 *
 * @example
 * ```ts
 * import { MemoryCatalogue } from "./memory_catalogue.ts";
 * const catalogue = new MemoryCatalogue(() => 0);
 * catalogue.getImage("golang"); // undefined
 * ```
 * @module
 */
import type {
  ActivationRecord,
  CatalogManifest,
  Catalogue,
  ChainRecord,
  ImageRecord,
} from "./catalogue.ts";

/** Images, chains and activations in maps. */
export class MemoryCatalogue implements Catalogue {
  readonly #images = new Map<string, ImageRecord>();
  readonly #chains = new Map<string, ChainRecord>();
  readonly #activations = new Map<string, ActivationRecord>();

  constructor(readonly now: () => number = Date.now) {}

  recordManifest(manifest: CatalogManifest): ImageRecord {
    const cur = this.#images.get(manifest.image);
    if (cur && cur.manifestDigest === manifest.digest) return this.getImage(manifest.image)!;
    const t = this.now();
    this.#images.set(manifest.image, {
      name: manifest.image,
      manifestDigest: manifest.digest,
      // Stored as text, as SQLite does: later changes to the caller's object change nothing.
      manifest: JSON.parse(JSON.stringify(manifest)),
      state: "pulling",
      topChain: null,
      error: null,
      createdAt: cur?.createdAt ?? t,
      updatedAt: t,
      layers: manifest.layers
        .map((l) => ({
          idx: l.index,
          key: l.key,
          size: l.size,
          etag: l.etag,
          sha256: null,
          chainId: null,
        }))
        .sort((a, b) => a.idx - b.idx),
    });
    return this.getImage(manifest.image)!;
  }

  setLayerDigests(image: string, layers: { idx: number; sha256: string; chainId: string }[]): void {
    const img = this.#images.get(image);
    for (const d of layers) {
      const l = img?.layers.find((l) => l.idx === d.idx);
      if (l) Object.assign(l, { sha256: d.sha256, chainId: d.chainId });
    }
  }

  markReady(image: string, topChain: string): void {
    const img = this.#images.get(image);
    if (img) Object.assign(img, { state: "ready", topChain, error: null, updatedAt: this.now() });
  }

  markFailed(image: string, error: string): void {
    const img = this.#images.get(image);
    if (img) Object.assign(img, { state: "failed", error, updatedAt: this.now() });
  }

  getImage(name: string): ImageRecord | undefined {
    const img = this.#images.get(name);
    return img && {
      ...img,
      manifest: JSON.parse(JSON.stringify(img.manifest)),
      layers: img.layers.map((l) => ({ ...l })),
    };
  }

  getChain(chainId: string): ChainRecord | undefined {
    const c = this.#chains.get(chainId);
    return c && { ...c };
  }

  /** Every chain, oldest first (by chain id within a millisecond), as `Catalog.listChains`. */
  listChains(): ChainRecord[] {
    return [...this.#chains.values()]
      .sort((a, b) =>
        a.createdAt - b.createdAt || (a.chainId < b.chainId ? -1 : a.chainId > b.chainId ? 1 : 0)
      )
      .map((c) => ({ ...c }));
  }

  beginChain(
    c: { chainId: string; parentChainId: string | null; layerSha256: string; device: string },
  ): ChainRecord {
    insertOnce(this.#chains, c.chainId, "chain", {
      chainId: c.chainId,
      parentChainId: c.parentChainId,
      layerSha256: c.layerSha256,
      device: c.device,
      state: "applying",
      unpackedBytes: null,
      createdAt: this.now(),
      sealedAt: null,
    });
    return this.getChain(c.chainId)!;
  }

  sealChain(chainId: string, unpackedBytes: number): void {
    const c = this.#chains.get(chainId);
    if (c) Object.assign(c, { state: "sealed", unpackedBytes, sealedAt: this.now() });
  }

  getActivation(name: string): ActivationRecord | undefined {
    const a = this.#activations.get(name);
    return a && { ...a };
  }

  addActivation(a: Omit<ActivationRecord, "createdAt">): ActivationRecord {
    insertOnce(this.#activations, a.name, "activation", {
      name: a.name,
      image: a.image,
      manifestDigest: a.manifestDigest,
      chainId: a.chainId,
      device: a.device,
      createdAt: this.now(),
    });
    return this.getActivation(a.name)!;
  }

  deleteActivation(name: string): void {
    this.#activations.delete(name);
  }
}

/**
 * SQLite's `INSERT ... ON CONFLICT (key) DO NOTHING` into a table whose `device` is UNIQUE: a row
 * already under `key` stays as it is; a device another row holds is refused.
 */
function insertOnce<R extends { device: string }>(
  rows: Map<string, R>,
  key: string,
  what: string,
  row: R,
): void {
  if (rows.has(key)) return;
  for (const r of rows.values()) {
    if (r.device === row.device) throw new Error(`device ${row.device} belongs to another ${what}`);
  }
  rows.set(key, row);
}
