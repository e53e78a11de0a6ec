/**
 * `thinimage images --remote`: the images in the bucket, with layer counts and sizes.
 * @module
 */
import type { Command } from "../command.ts";
import { S3_HELP, S3_OPTIONS, S3_USAGE, sourceConfigFromArgs } from "../s3_options.ts";
// Static: this command gives up --allow-read before it lists, and Deno's lazy imports need it.
import { createSource } from "../../retrieve/source.ts";
import { formatBytes } from "../../log.ts";
import { listRemoteImages, type RemoteImage } from "../../retrieve/resolve.ts";
import { UsageError } from "../../errors.ts";

/** The `--json` document of `images --remote`. */
export interface RemoteImagesResult {
  source: string;
  prefix: string;
  images: RemoteImage[];
}

const images: Command = {
  name: "images",
  summary: "list images: --remote for those in the bucket",
  usage: `thinimage images --remote ${S3_USAGE}\n${S3_HELP}`,
  options: { ...S3_OPTIONS, remote: { type: "boolean" } },
  keeps: ["net", "env", "sys"],
  async run(ctx, { values }) {
    if (!values.remote) {
      throw new UsageError("images: only --remote is available so far (images in the bucket)");
    }
    const source = createSource(sourceConfigFromArgs(values));
    try {
      const list = await listRemoteImages(source, { signal: ctx.signal });
      const doc: RemoteImagesResult = {
        source: source.location,
        prefix: source.prefix,
        images: list,
      };
      ctx.result(
        doc,
        (d) =>
          d.images.length === 0
            ? `no images under ${d.source}/${d.prefix}`
            : d.images.map((i) =>
              i.error
                ? `${JSON.stringify(i.image).padEnd(20)} invalid: ${i.error}`
                : `${i.image.padEnd(20)} ${String(i.layers).padStart(3)} layers  ${
                  formatBytes(i.size)
                }`
            ).join("\n"),
      );
    } finally {
      source.close();
    }
  },
};

export default images;
