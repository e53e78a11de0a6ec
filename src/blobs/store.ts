/**
 * The content-addressed blob store: each verified layer blob once, as
 * `blobs/sha256/<hex>` under the state directory, with its SQLite records.
 *
 * A blob file appears only by an atomic rename of a fully verified temporary file, and its
 * rows are written after the rename; so a partial download never counts as a blob, and two
 * processes storing the same bytes at once both end with the one identical file.
 *
 * @example
 * ```ts
 * import { openStore } from "../store/db.ts";
 * import { BlobStore } from "./store.ts";
 * const store = openStore("/var/lib/thinimage/thinimage.db");
 * const blobs = new BlobStore("/var/lib/thinimage", store);
 * const sha = blobs.findByEtag("d41d8cd98f00b204e9800998ecf8427e", 0);
 * if (sha) console.log(blobs.pathOf(sha));
 * ```
 * @module
 */
import type { Store } from "../store/db.ts";
import type { LayerFormat } from "../image/format.ts";
import { ThinimageError } from "../errors.ts";
import { fileIdentity } from "../host/file_identity.ts";
import { StateDir } from "../state_dir.ts";

/** A stored blob, as its row says. */
export interface BlobRecord {
  sha256: string;
  size: number;
  format: LayerFormat;
  createdAt: number;
}

/** A validated layer's figures, as {@linkcode BlobStore.recordLayer} keeps them. */
export interface LayerFigures {
  entries: number;
  whiteouts: number;
  unpackedBytes: number;
}

/** What {@linkcode BlobStore.commit} needs to know about a verified temporary file. */
export interface VerifiedBlob {
  sha256: string;
  size: number;
  format: LayerFormat;
  /** The S3 object it came from, to find it again by ETag. */
  source?: { etag: string; size: number; key: string };
}

/** A temporary file being written, inside the store's filesystem (for the atomic rename). */
export interface TempBlob {
  path: string;
  file: Deno.FsFile;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** How long a dead download's bytes are kept for the next fetch of the same object. */
const RESUMABLE_MS = 24 * 3600_000;

/**
 * A file-name-safe tag for an object (e.g. its ETag and size): the start of its SHA-256 in hex.
 * Web Crypto, not node:crypto, which would load Deno's Node layer for every command.
 */
async function tempTag(object: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(object));
  return Array.from(new Uint8Array(digest).subarray(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
/**
 * ETags that name the content: an MD5 (single-part upload, checked while downloading) or an
 * S3 multipart ETag (MD5 of the parts' MD5s). Other stores' opaque ETags may be reused for
 * different bytes, so they never stand in for a download.
 */
const CONTENT_ETAG = /^[0-9a-f]{32}(-[0-9]+)?$/;

/** The blob store of one state directory. */
export class BlobStore {
  /** `<stateDir>/blobs`. */
  readonly root: string;
  readonly #store: Store;

  constructor(readonly stateDir: string, store: Store) {
    this.root = new StateDir(stateDir).blobs;
    this.#store = store;
  }

  /** Where the blob with this SHA-256 lives (whether or not it exists). */
  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new ThinimageError(`not a sha256 hex digest: ${sha256}`);
    return `${this.root}/sha256/${sha256}`;
  }

  /** True when the blob is recorded and its file is in place with the recorded size. */
  has(sha256: string): boolean {
    const rec = this.get(sha256);
    if (!rec) return false;
    try {
      return Deno.statSync(this.pathOf(sha256)).size === rec.size;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /** The blob's row, if any. */
  get(sha256: string): BlobRecord | undefined {
    const row = this.#store.db.prepare(
      "SELECT sha256, size, format, created_at FROM blobs WHERE sha256 = ?",
    ).get(sha256) as
      | { sha256: string; size: number; format: LayerFormat; created_at: number }
      | undefined;
    return row
      ? { sha256: row.sha256, size: row.size, format: row.format, createdAt: row.created_at }
      : undefined;
  }

  /**
   * The blob an S3 object with this ETag and size was stored as, if that blob is still
   * present; undefined for ETags that do not name content.
   */
  findByEtag(etag: string, size: number): string | undefined {
    if (!CONTENT_ETAG.test(etag)) return undefined;
    const row = this.#store.db.prepare(
      "SELECT sha256 FROM blob_sources WHERE etag = ? AND size = ?",
    ).get(etag, size) as { sha256: string } | undefined;
    return row && this.has(row.sha256) ? row.sha256 : undefined;
  }

  /**
   * Forget blob `sha256` and delete its file (garbage collection). The record goes first, so
   * a crash in between leaves an unrecorded file, which is never used, rather than a record
   * of a missing file; absent is success.
   */
  async remove(sha256: string): Promise<void> {
    this.#store.tx(() => this.#store.db.prepare("DELETE FROM blobs WHERE sha256 = ?").run(sha256));
    await Deno.remove(this.pathOf(sha256)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  /**
   * The identity blob `sha256`'s file had when its digest was verified, if recorded: while the
   * file still has it, it holds the verified bytes.
   */
  verifiedIdentity(sha256: string): string | undefined {
    const row = this.#store.db.prepare("SELECT identity FROM blobs WHERE sha256 = ?").get(
      sha256,
    ) as { identity: string | null } | undefined;
    return row?.identity ?? undefined;
  }

  /** Keep a validated layer's figures (the blob must be recorded). */
  recordLayer(sha256: string, f: LayerFigures): void {
    this.#store.tx(() =>
      this.#store.db.prepare(
        `INSERT OR REPLACE INTO blob_layers (sha256, entries, whiteouts, unpacked_bytes, validated_at)
         VALUES (?, ?, ?, ?, ?)`,
      ).run(sha256, f.entries, f.whiteouts, f.unpackedBytes, Date.now())
    );
  }

  /** A validated layer's figures, if kept. */
  layerOf(sha256: string): LayerFigures | undefined {
    const row = this.#store.db.prepare(
      "SELECT entries, whiteouts, unpacked_bytes FROM blob_layers WHERE sha256 = ?",
    ).get(sha256) as { entries: number; whiteouts: number; unpacked_bytes: number } | undefined;
    return row
      ? { entries: row.entries, whiteouts: row.whiteouts, unpackedBytes: row.unpacked_bytes }
      : undefined;
  }

  /** Every recorded blob, oldest first. */
  list(): BlobRecord[] {
    const rows = this.#store.db.prepare(
      "SELECT sha256, size, format, created_at FROM blobs ORDER BY created_at, sha256",
    ).all() as { sha256: string; size: number; format: LayerFormat; created_at: number }[];
    return rows.map((r) => ({
      sha256: r.sha256,
      size: r.size,
      format: r.format,
      createdAt: r.created_at,
    }));
  }

  /**
   * Remember that the S3 object (etag, size) holds blob `sha256` (already stored). Does
   * nothing for ETags that do not name content.
   */
  recordSource(etag: string, size: number, sha256: string, key: string): void {
    if (!CONTENT_ETAG.test(etag)) return;
    this.#store.tx(() => {
      this.#store.db.prepare(
        `INSERT INTO blob_sources (etag, size, sha256, first_key, seen_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (etag, size) DO UPDATE SET sha256 = excluded.sha256, seen_at = excluded.seen_at`,
      ).run(etag, size, sha256, key, Date.now());
    });
  }

  /**
   * Open a new temporary file for a download, holding an exclusive lock on it until it is
   * closed: {@linkcode BlobStore.removeStaleTemps} tells abandoned files from live ones by
   * whether their lock can be taken (a lock dies with its process, whatever killed it).
   */
  async createTemp(object?: string): Promise<TempBlob> {
    const dir = `${this.root}/tmp`;
    await Deno.mkdir(dir, { recursive: true });
    const name = `${dir}/${object ? `${await tempTag(object)}.` : ""}${crypto.randomUUID()}`;
    // Created and locked under a name the sweeper leaves alone, then renamed (the lock
    // follows the file), so no sweeper can take a fresh file for an abandoned one.
    const file = await Deno.open(`${name}.new`, { read: true, write: true, createNew: true });
    try {
      if (!(await file.tryLock(true))) throw new ThinimageError(`cannot lock ${name}.new`);
      await Deno.rename(`${name}.new`, `${name}.partial`);
    } catch (err) {
      file.close();
      await Deno.remove(`${name}.new`).catch(() => {});
      throw err;
    }
    return { path: `${name}.partial`, file };
  }

  /**
   * The temporary file a dead process left while downloading `object` (as named to
   * {@linkcode BlobStore.createTemp}), locked for the caller, so that its bytes need not be
   * fetched again; undefined when there is none. Its content is a prefix of the object's
   * bytes as far as the dead writer got; the caller checks it (hashes) like any download.
   */
  async adoptTemp(object: string): Promise<TempBlob | undefined> {
    const dir = `${this.root}/tmp`;
    const prefix = `${await tempTag(object)}.`;
    const entries = await listDir(dir);
    for (const e of entries) {
      if (!e.name.startsWith(prefix) || !e.name.endsWith(".partial")) continue;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(`${dir}/${e.name}`, { read: true, write: true });
      } catch {
        continue; // committed or swept meanwhile
      }
      if (await file.tryLock(true)) return { path: `${dir}/${e.name}`, file };
      file.close(); // a live download
    }
    return undefined;
  }

  /**
   * Move a verified, fsynced temporary file into place as its blob and record it. When the
   * blob is already there (another process stored the same bytes), the temporary file is
   * dropped instead. The rename comes before the rows, so a row never names a missing file.
   */
  async commit(tempPath: string, blob: VerifiedBlob): Promise<void> {
    const dest = this.pathOf(blob.sha256);
    await Deno.mkdir(`${this.root}/sha256`, { recursive: true });
    if (await sizeOf(dest) === blob.size) {
      await Deno.remove(tempPath).catch(() => {});
    } else {
      await Deno.rename(tempPath, dest);
      await syncDir(`${this.root}/sha256`);
    }
    // The identity the verified bytes have in place (a rename moves the change time).
    const identity = fileIdentity(await Deno.stat(dest));
    this.#store.tx(() => {
      this.#store.db.prepare(
        "INSERT OR IGNORE INTO blobs (sha256, size, format, created_at, identity) VALUES (?, ?, ?, ?, ?)",
      ).run(blob.sha256, blob.size, blob.format, Date.now(), identity);
      if (blob.source) {
        this.recordSource(blob.source.etag, blob.source.size, blob.sha256, blob.source.key);
      }
    });
  }

  /**
   * Delete temporary files nobody is writing any more (left by a crash or a SIGKILL mid
   * download): those whose lock can be taken. Returns the paths removed.
   */
  async removeStaleTemps(): Promise<string[]> {
    const dir = `${this.root}/tmp`;
    const removed: string[] = [];
    const entries = await listDir(dir);
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (e.name.endsWith(".new")) {
        // Only ever a moment old, unless its creator died between open and rename.
        const st = await Deno.stat(path).catch(() => undefined);
        if (st?.mtime && Date.now() - st.mtime.getTime() > 60_000) {
          await Deno.remove(path).catch(() => {});
          removed.push(path);
        }
        continue;
      }
      if (!e.name.endsWith(".partial")) continue;
      if (/^[0-9a-f]{16}\./.test(e.name)) {
        // A download of a known object: the next fetch of it resumes from these bytes
        // (adoptTemp), so it stays for a day unless adopted.
        const st = await Deno.stat(path).catch(() => undefined);
        if (st?.mtime && Date.now() - st.mtime.getTime() < RESUMABLE_MS) continue;
      }
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true, write: true });
      } catch {
        continue; // gone meanwhile: its owner committed or cleaned it
      }
      try {
        if (await file.tryLock(true)) {
          await Deno.remove(path).catch(() => {});
          removed.push(path);
        }
      } finally {
        file.close();
      }
    }
    return removed;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** fsync a directory, so a rename inside it survives a power cut. */
async function syncDir(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/** The entries of `dir`; none when it does not exist. */
async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}
