/**
 * The S3 options every command that reads images shares (`fetch`, `images --remote`, `pull`,
 * `activate`): one definition, one help text, one way to turn them into a source.
 *
 * @example
 * ```ts
 * import type { Command } from "./command.ts";
 * import { S3_OPTIONS, S3_USAGE, sourceFromArgs } from "./s3_options.ts";
 * const cmd: Command = {
 *   name: "peek", summary: "list an image", usage: `thinimage peek IMAGE ${S3_USAGE}`,
 *   options: { ...S3_OPTIONS }, positionals: [1, 1], keeps: ["net", "env", "sys"],
 *   async run(_ctx, { values }) { (await sourceFromArgs(values)).close(); },
 * };
 * ```
 * @module
 */
import type { OptionsConfig } from "./args.ts";
import type { CommandArgs } from "./command.ts";
import type { ObjectSource, SourceConfig } from "../retrieve/source.ts";
import {
  DEFAULT_BUCKET,
  DEFAULT_MAX_PAGES,
  DEFAULT_PREFIX,
  DEFAULT_REGION,
} from "../retrieve/defaults.ts";
import { DEFAULT_MAX_KEYS } from "../image/limits.ts";
import { UsageError } from "../errors.ts";

/** `--bucket`, `--region`, `--endpoint`, `--prefix`, `--max-pages`, `--max-keys`. */
export const S3_OPTIONS = {
  bucket: { type: "string" },
  region: { type: "string" },
  endpoint: { type: "string" },
  prefix: { type: "string" },
  "max-pages": { type: "string" },
  "max-keys": { type: "string" },
} as const satisfies OptionsConfig;

/** The usage fragment for {@linkcode S3_OPTIONS}. */
export const S3_USAGE =
  "[--bucket NAME] [--region REGION] [--endpoint URL] [--prefix PREFIX] [--max-pages N] [--max-keys N]";

/** Help lines for {@linkcode S3_OPTIONS}, to append to a command's usage. */
export const S3_HELP = [
  `  --bucket NAME       bucket (env THINIMAGE_BUCKET; default ${DEFAULT_BUCKET})`,
  `  --region REGION     region (default ${DEFAULT_REGION})`,
  "  --endpoint URL      S3-compatible endpoint (env THINIMAGE_S3_ENDPOINT; default AWS)",
  `  --prefix PREFIX     key prefix of the images (default ${DEFAULT_PREFIX})`,
  `  --max-pages N       refuse (65) a listing of more pages (default ${DEFAULT_MAX_PAGES})`,
  `  --max-keys N        refuse (65) more keys under one image (default ${DEFAULT_MAX_KEYS})`,
  "  credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN); anonymous without",
].join("\n");

/** The source configuration from parsed flags, then environment, then defaults. */
export function sourceConfigFromArgs(values: CommandArgs["values"]): SourceConfig {
  const str = (name: string) => {
    const v = values[name];
    return typeof v === "string" ? v : undefined;
  };
  return {
    bucket: str("bucket") ?? env("THINIMAGE_BUCKET"),
    region: str("region"),
    endpoint: str("endpoint") ?? env("THINIMAGE_S3_ENDPOINT"),
    prefix: str("prefix"),
    limits: {
      maxPages: count(str("max-pages"), "--max-pages"),
      maxKeys: count(str("max-keys"), "--max-keys"),
    },
  };
}

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,9}$/.test(v)) {
    throw new UsageError(`${flag} must be a positive whole number, not ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/**
 * `createSource` over {@linkcode sourceConfigFromArgs}. The S3 SDK is loaded here, on first
 * use, not when a command's module is: commands that may not reach S3 stay quick to start.
 */
export async function sourceFromArgs(values: CommandArgs["values"]): Promise<ObjectSource> {
  const { createSource } = await import("../retrieve/source.ts");
  return createSource(sourceConfigFromArgs(values));
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}
