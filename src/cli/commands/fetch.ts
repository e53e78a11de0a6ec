/**
 * `thinimage fetch IMAGE`: resolve an image and download the layers not yet stored.
 * @module
 */
import type { Command } from "../command.ts";
import { S3_HELP, S3_OPTIONS, S3_USAGE, sourceFromArgs } from "../s3_options.ts";
import { formatBytes } from "../../log.ts";
import { BlobStore } from "../../blobs/store.ts";
import { StateDir } from "../../state_dir.ts";
import { fetchImage } from "../../retrieve/fetch_image.ts";
import { DEFAULT_MAX_BLOB_BYTES } from "../../retrieve/fetch_layer.ts";
import { DEFAULT_MAX_LAYERS, describeIgnored } from "../../image/manifest.ts";
import { UsageError } from "../../errors.ts";
import { checkName } from "../../names.ts";
import { describeError } from "../../errors.ts";

/** The `--json` document of `fetch`. */
export interface FetchResult {
  image: string;
  manifest: string;
  layers: { key: string; size: number; sha256: string; downloaded: boolean }[];
}

const fetch: Command = {
  name: "fetch",
  summary: "download an image's layers from S3 into the blob store (only the missing ones)",
  usage: `thinimage fetch IMAGE ${S3_USAGE} [--max-layers N] [--max-blob-bytes N]\n${S3_HELP}\n` +
    `  --max-layers N      refuse images with more layers (default ${DEFAULT_MAX_LAYERS})\n` +
    `  --max-blob-bytes N  refuse larger blobs (default ${DEFAULT_MAX_BLOB_BYTES})`,
  options: {
    ...S3_OPTIONS,
    "max-layers": { type: "string" },
    "max-blob-bytes": { type: "string" },
  },
  positionals: [1, 1],
  keeps: ["read", "write", "net", "env", "sys"],
  async run(ctx, { values, positionals }) {
    const maxLayers = positiveInt(values["max-layers"], "--max-layers");
    const maxBytes = positiveInt(values["max-blob-bytes"], "--max-blob-bytes");
    checkName("image", positionals[0], "IMAGE");
    const source = await sourceFromArgs(values);
    const dir = new StateDir(ctx.stateDir);
    await dir.ensure();
    const store = dir.openStore();
    try {
      const blobs = new BlobStore(ctx.stateDir, store);
      const done = new Map<string, number>();
      let total = 0;
      const { manifest, layers } = await fetchImage(source, blobs, positionals[0], {
        signal: ctx.signal,
        maxLayers,
        maxBytes,
        onManifest(m) {
          total = m.layers.reduce((n, l) => n + l.size, 0);
          const ignored = describeIgnored(m);
          if (ignored) ctx.log.warn(ignored);
        },
        onProgress(layer, bytes) {
          done.set(layer.key, bytes);
          let sum = 0;
          for (const v of done.values()) sum += v;
          ctx.log.progress(`fetch ${positionals[0]}`, sum, total);
        },
        onRetry(err, attempt, waitMs) {
          ctx.log.warn(`retrying (attempt ${attempt + 1}) in ${Math.round(waitMs)} ms`, {
            reason: describeError(err),
          });
        },
      });
      ctx.log.endProgress();
      const doc: FetchResult = {
        image: manifest.image,
        manifest: manifest.digest,
        layers: layers.map((l, i) => ({
          key: l.key,
          size: manifest.layers[i].size,
          sha256: l.sha256,
          downloaded: l.downloaded,
        })),
      };
      ctx.result(doc, (d) => {
        const got = d.layers.filter((l) => l.downloaded);
        const bytes = got.reduce((n, l) => n + l.size, 0);
        return [
          `${d.image}: ${d.layers.length} layers, ${got.length} downloaded (${
            formatBytes(bytes)
          }), ` +
          `${d.layers.length - got.length} already stored`,
          `manifest ${d.manifest}`,
          ...d.layers.map((l) =>
            `  ${l.key}  ${formatBytes(l.size)}  sha256:${l.sha256.slice(0, 12)}  ${
              l.downloaded ? "downloaded" : "stored"
            }`
          ),
        ].join("\n");
      });
    } finally {
      store.close();
      source.close();
    }
  },
};

function positiveInt(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^[1-9][0-9]{0,15}$/.test(v)) {
    throw new UsageError(`${flag} must be a positive integer, not ${JSON.stringify(v)}`);
  }
  return Number(v);
}

export default fetch;
