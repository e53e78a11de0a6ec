/**
 * Where images come from: a bucket and key prefix on AWS S3 or any S3-compatible endpoint,
 * behind the small {@linkcode ObjectSource} interface the rest of retrieval uses (and tests
 * can point at a fault-injecting proxy).
 *
 * @example
 * ```ts
 * import { createSource } from "./source.ts";
 * const source = createSource({ bucket: "flyio-platform-hiring-challenge", region: "us-east-1" });
 * source.prefix; // "images/"
 * ```
 * @module
 */
import {
  type GetOptions,
  type GetResponse,
  type S3Credentials,
  type S3Object,
  S3ObjectClient,
} from "../s3/client.ts";
import { UsageError } from "../errors.ts";

import { DEFAULT_BUCKET, DEFAULT_MAX_PAGES, DEFAULT_PREFIX, DEFAULT_REGION } from "./defaults.ts";
export { DEFAULT_BUCKET, DEFAULT_MAX_PAGES, DEFAULT_PREFIX, DEFAULT_REGION };

/** What retrieval needs from a bucket. */
export interface ObjectSource {
  /** For messages: `s3://bucket` or `http://endpoint/bucket`. */
  readonly location: string;
  /** The key prefix images live under, ending in `/` (or empty). */
  readonly prefix: string;
  /** Every object under `prefix`, all pages (at most `maxPages`: then InvalidInputError). */
  list(
    prefix: string,
    opts?: { pageSize?: number; delimiter?: string; signal?: AbortSignal; maxPages?: number },
  ): AsyncIterable<S3Object>;
  /** How much of a listing this source takes (`--max-pages`, `--max-keys`). */
  readonly limits?: ListLimits;
  /** Open one GET (no retries). */
  get(key: string, opts?: GetOptions): Promise<GetResponse>;
  /** Release connections. */
  close(): void;
}

/** Bounds on a listing: pages in all, and keys under one image's prefix. */
export interface ListLimits {
  /** Default {@linkcode DEFAULT_MAX_PAGES}. */
  maxPages?: number;
  /** Default DEFAULT_MAX_KEYS (src/image/manifest.ts). */
  maxKeys?: number;
}

/** Configuration for {@linkcode createSource}. */
export interface SourceConfig {
  bucket?: string;
  region?: string;
  /** An S3-compatible endpoint URL; AWS when absent. */
  endpoint?: string;
  /** Key prefix of the images (default `images/`). */
  prefix?: string;
  /**
   * Credentials: read from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when
   * absent; `"anonymous"` (or no such variables) sends unsigned requests.
   */
  credentials?: S3Credentials | "anonymous";
  /** Wait for response headers at most this long, in ms (default 15 s). */
  headersTimeoutMs?: number;
  /** Base backoff between listing attempts, in ms (default 200). */
  retryBaseDelayMs?: number;
  /** Bounds on listings (`--max-pages`, `--max-keys`). */
  limits?: ListLimits;
}

/**
 * A source for `config`, with defaults filled in. Throws {@linkcode UsageError} for a
 * malformed endpoint, bucket or prefix.
 *
 * @example
 * ```ts
 * import { createSource } from "./source.ts";
 * const local = createSource({ bucket: "thinimage-fixtures", endpoint: "http://127.0.0.1:7480" });
 * ```
 */
export function createSource(config: SourceConfig = {}): ObjectSource {
  const bucket = config.bucket ?? DEFAULT_BUCKET;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(`invalid bucket name ${JSON.stringify(bucket)}`);
  }
  const region = config.region ?? DEFAULT_REGION;
  if (!/^[a-z0-9-]{1,32}$/.test(region)) {
    throw new UsageError(`invalid region ${JSON.stringify(region)}`);
  }
  const prefix = normalizePrefix(config.prefix ?? DEFAULT_PREFIX);
  let endpoint: string | undefined;
  if (config.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(config.endpoint);
    } catch {
      throw new UsageError(`invalid endpoint ${JSON.stringify(config.endpoint)}: not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new UsageError(`invalid endpoint ${JSON.stringify(config.endpoint)}: http(s) only`);
    }
    endpoint = url.origin;
  }
  const credentials = config.credentials === "anonymous"
    ? undefined
    : config.credentials ?? credentialsFromEnv();
  const client = new S3ObjectClient({
    bucket,
    region,
    endpoint,
    credentials,
    headersTimeoutMs: config.headersTimeoutMs,
    retryBaseDelayMs: config.retryBaseDelayMs,
  });
  return {
    location: client.location,
    prefix,
    limits: config.limits ?? {},
    list: (p, opts) => client.list(p, opts),
    get: (key, opts) => client.get(key, opts),
    close: () => client.destroy(),
  };
}

/**
 * Credentials from the standard AWS environment variables, or undefined (anonymous) when
 * they are not set or the environment may not be read.
 */
export function credentialsFromEnv(): S3Credentials | undefined {
  const get = (name: string) => {
    try {
      return Deno.env.get(name) || undefined;
    } catch {
      return undefined;
    }
  };
  const accessKeyId = get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = get("AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, sessionToken: get("AWS_SESSION_TOKEN") };
}

function normalizePrefix(prefix: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(prefix) || prefix.startsWith("/")) {
    throw new UsageError(`invalid prefix ${JSON.stringify(prefix)}`);
  }
  return prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
}
