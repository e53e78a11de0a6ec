/**
 * The catalogue: images, their layers, layer chains and activations, in SQLite.
 *
 * Rows here say what the tool believes; the device records of `src/devmapper` say what it did
 * to the kernel. Every multi-row change is one transaction.
 *
 * @example
 * ```ts
 * import { openStore } from "./db.ts";
 * import { Catalog } from "./catalog.ts";
 * const catalog = new Catalog(openStore("/tmp/state/thinimage.db"));
 * catalog.listImages(); // []
 * ```
 * @module
 */
import type { Store } from "./db.ts";
import type {
  ActivationRecord,
  CatalogManifest,
  Catalogue,
  ChainRecord,
  ImageRecord,
} from "../image/catalogue.ts";

/** Read and write the catalogue tables. */
export class Catalog implements Catalogue {
  constructor(readonly store: Store, readonly now: () => number = Date.now) {}

  /**
   * Record `manifest` for its image. An unchanged digest keeps the row (and its state); a new
   * or changed one replaces the layers and puts the image back to 'pulling'. Returns the row.
   */
  recordManifest(manifest: CatalogManifest): ImageRecord {
    const db = this.store.db;
    return this.store.tx(() => {
      const cur = this.getImage(manifest.image);
      if (cur && cur.manifestDigest === manifest.digest) return cur;
      const t = this.now();
      db.prepare(
        `INSERT INTO images (name, manifest_digest, manifest, state, top_chain, error, created_at, updated_at)
         VALUES (?, ?, ?, 'pulling', NULL, NULL, ?, ?)
         ON CONFLICT (name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
           manifest = excluded.manifest, state = 'pulling', top_chain = NULL, error = NULL,
           updated_at = excluded.updated_at`,
      ).run(manifest.image, manifest.digest, JSON.stringify(manifest), t, t);
      db.prepare("DELETE FROM image_layers WHERE image = ?").run(manifest.image);
      const ins = db.prepare(
        "INSERT INTO image_layers (image, idx, key, size, etag) VALUES (?, ?, ?, ?, ?)",
      );
      for (const l of manifest.layers) ins.run(manifest.image, l.index, l.key, l.size, l.etag);
      return this.getImage(manifest.image)!;
    });
  }

  /** Record the digests of an image's layers and their chain ids, in one transaction. */
  setLayerDigests(
    image: string,
    digests: { idx: number; sha256: string; chainId: string }[],
  ): void {
    const up = this.store.db.prepare(
      "UPDATE image_layers SET sha256 = ?, chain_id = ? WHERE image = ? AND idx = ?",
    );
    this.store.tx(() => {
      for (const d of digests) up.run(d.sha256, d.chainId, image, d.idx);
    });
  }

  /** Mark an image ready on its top chain. */
  markReady(image: string, topChain: string): void {
    this.store.tx(() =>
      this.store.db.prepare(
        "UPDATE images SET state = 'ready', top_chain = ?, error = NULL, updated_at = ? WHERE name = ?",
      ).run(topChain, this.now(), image)
    );
  }

  /** Mark an image failed with the reason (it is pulled again next time). */
  markFailed(image: string, error: string): void {
    this.store.tx(() =>
      this.store.db.prepare(
        "UPDATE images SET state = 'failed', error = ?, updated_at = ? WHERE name = ?",
      ).run(error, this.now(), image)
    );
  }

  /** One image with its layers, or undefined. */
  getImage(name: string): ImageRecord | undefined {
    const row = this.store.db.prepare("SELECT * FROM images WHERE name = ?").get(name) as
      | Record<string, unknown>
      | undefined;
    return row ? this.#image(row) : undefined;
  }

  /** Every image, by name. */
  listImages(): ImageRecord[] {
    return (this.store.db.prepare("SELECT * FROM images ORDER BY name").all() as Record<
      string,
      unknown
    >[]).map((r) => this.#image(r));
  }

  /** Forget an image (its layers go with it); chains and blobs stay until gc. */
  deleteImage(name: string): void {
    this.store.tx(() => this.store.db.prepare("DELETE FROM images WHERE name = ?").run(name));
  }

  /** A chain, or undefined. */
  getChain(chainId: string): ChainRecord | undefined {
    const row = this.store.db.prepare("SELECT * FROM chains WHERE chain_id = ?").get(chainId) as
      | Record<string, unknown>
      | undefined;
    return row ? chainOf(row) : undefined;
  }

  /** Every chain. */
  listChains(): ChainRecord[] {
    return (this.store.db.prepare("SELECT * FROM chains ORDER BY created_at, chain_id")
      .all() as Record<string, unknown>[]).map(chainOf);
  }

  /** Record that a chain's device is being made (idempotent; a sealed chain is left alone). */
  beginChain(
    c: { chainId: string; parentChainId: string | null; layerSha256: string; device: string },
  ): ChainRecord {
    return this.store.tx(() => {
      this.store.db.prepare(
        `INSERT INTO chains (chain_id, parent_chain_id, layer_sha256, device, state, created_at)
         VALUES (?, ?, ?, ?, 'applying', ?) ON CONFLICT (chain_id) DO NOTHING`,
      ).run(c.chainId, c.parentChainId, c.layerSha256, c.device, this.now());
      return this.getChain(c.chainId)!;
    });
  }

  /** Seal a chain: its device is complete and synced, and is never written again. */
  sealChain(chainId: string, unpackedBytes: number): void {
    this.store.tx(() =>
      this.store.db.prepare(
        "UPDATE chains SET state = 'sealed', unpacked_bytes = ?, sealed_at = ? WHERE chain_id = ?",
      ).run(unpackedBytes, this.now(), chainId)
    );
  }

  /** Forget a chain (after its device was removed). */
  deleteChain(chainId: string): void {
    this.store.tx(() =>
      this.store.db.prepare("DELETE FROM chains WHERE chain_id = ?").run(chainId)
    );
  }

  /** An activation, or undefined. */
  getActivation(name: string): ActivationRecord | undefined {
    const row = this.store.db.prepare("SELECT * FROM activations WHERE name = ?").get(name) as
      | Record<string, unknown>
      | undefined;
    return row ? activationOf(row) : undefined;
  }

  /** Every activation, by name. */
  listActivations(): ActivationRecord[] {
    return (this.store.db.prepare("SELECT * FROM activations ORDER BY name").all() as Record<
      string,
      unknown
    >[]).map(activationOf);
  }

  /** Record an activation (idempotent on its name). */
  addActivation(a: Omit<ActivationRecord, "createdAt">): ActivationRecord {
    return this.store.tx(() => {
      this.store.db.prepare(
        `INSERT INTO activations (name, image, manifest_digest, chain_id, device, created_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
      ).run(a.name, a.image, a.manifestDigest, a.chainId, a.device, this.now());
      return this.getActivation(a.name)!;
    });
  }

  /** Forget an activation (after its device was removed). */
  deleteActivation(name: string): void {
    this.store.tx(() => this.store.db.prepare("DELETE FROM activations WHERE name = ?").run(name));
  }

  #image(row: Record<string, unknown>): ImageRecord {
    const layers = (this.store.db.prepare(
      "SELECT idx, key, size, etag, sha256, chain_id FROM image_layers WHERE image = ? ORDER BY idx",
    ).all(row.name as string) as Record<string, unknown>[]).map((l) => ({
      idx: Number(l.idx),
      key: String(l.key),
      size: Number(l.size),
      etag: String(l.etag),
      sha256: (l.sha256 as string | null) ?? null,
      chainId: (l.chain_id as string | null) ?? null,
    }));
    return {
      name: String(row.name),
      manifestDigest: String(row.manifest_digest),
      manifest: JSON.parse(String(row.manifest)),
      state: row.state as ImageRecord["state"],
      topChain: (row.top_chain as string | null) ?? null,
      error: (row.error as string | null) ?? null,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
      layers,
    };
  }
}

function chainOf(r: Record<string, unknown>): ChainRecord {
  return {
    chainId: String(r.chain_id),
    parentChainId: (r.parent_chain_id as string | null) ?? null,
    layerSha256: String(r.layer_sha256),
    device: String(r.device),
    state: r.state as ChainRecord["state"],
    unpackedBytes: r.unpacked_bytes === null ? null : Number(r.unpacked_bytes),
    createdAt: Number(r.created_at),
    sealedAt: r.sealed_at === null ? null : Number(r.sealed_at),
  };
}

function activationOf(r: Record<string, unknown>): ActivationRecord {
  return {
    name: String(r.name),
    image: String(r.image),
    manifestDigest: String(r.manifest_digest),
    chainId: String(r.chain_id),
    device: String(r.device),
    createdAt: Number(r.created_at),
  };
}
