/**
 * A small S3 client: list a prefix (every page) and GET an object (whole, or from an offset
 * with If-Match), anonymously or with credentials, against AWS or any S3-compatible endpoint.
 * Every failure becomes an {@linkcode S3RequestError} or {@linkcode ObjectChangedError}, so
 * callers decide on retries without knowing the SDK.
 *
 * The SDK settings are the ones that work under Deno (see the project notes): path-style
 * addressing, checksums only when required (no aws-chunked framing), the fetch handler (flat
 * memory while streaming), and no SDK retries (callers resume instead of restarting).
 *
 * @example
 * ```ts
 * import { S3ObjectClient } from "./client.ts";
 * const s3 = new S3ObjectClient({ bucket: "thinimage-fixtures", region: "us-east-1",
 *   endpoint: "http://127.0.0.1:7480" });
 * for await (const obj of s3.list("images/golang/")) console.log(obj.key, obj.size);
 * ```
 * @module
 */
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { ObjectChangedError, S3_RETRYABLE, S3RequestError, s3RetryPolicy } from "./errors.ts";
import { withRetries } from "../retry.ts";
import { InvalidInputError } from "../errors.ts";

/** Static credentials (from the AWS_* environment, usually). */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where the objects are and how to ask for them. */
export interface S3Config {
  bucket: string;
  region: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:7480`); AWS when absent. */
  endpoint?: string;
  /** Signed requests with these; anonymous (unsigned) requests when absent. */
  credentials?: S3Credentials;
  /** How long to wait for response headers, in ms (default 15 s). */
  headersTimeoutMs?: number;
  /** Attempts for listing pages (default 5). */
  listAttempts?: number;
  /** Base backoff between attempts, in ms (default 200). */
  retryBaseDelayMs?: number;
}

/** One object of a listing. */
export interface S3Object {
  key: string;
  size: number;
  /** Without the quotes. */
  etag: string;
  /** ISO 8601. */
  lastModified: string;
}

/** Options of {@linkcode S3ObjectClient.get}. */
export interface GetOptions {
  /** Start at this byte (a `Range: bytes=N-` request); the whole object when absent or 0. */
  start?: number;
  /** Only if the object still has this ETag (unquoted). */
  ifMatch?: string;
  signal?: AbortSignal;
}

/** An open GET: read `body` to the end or cancel it. */
export interface GetResponse {
  /** 200 (whole object) or 206 (from `start`). */
  status: number;
  body: ReadableStream<Uint8Array>;
  /** Bytes in `body`. */
  contentLength: number;
  /** The object's ETag, unquoted ("" when the server sent none). */
  etag: string;
  /** The object's full size (from Content-Range on a 206). */
  objectSize: number;
}

/** A bucket, through the AWS SDK. */
export class S3ObjectClient {
  readonly config: S3Config;
  readonly #client: S3Client;

  constructor(config: S3Config) {
    this.config = config;
    this.#client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.endpoint !== undefined,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: new FetchHttpHandler(),
      maxAttempts: 1,
      // The SDK's default chain would read ~/.aws and probe the EC2 metadata service; the
      // caller decides, from the environment it was given.
      credentials: config.credentials ?? { accessKeyId: "", secretAccessKey: "" },
      // Anonymous reads of a public bucket: the request goes out unsigned.
      ...(config.credentials ? {} : { signer: { sign: (r: unknown) => Promise.resolve(r) } }),
    } as S3ClientConfig);
  }

  /** A short name for messages: `s3://bucket` or `http://endpoint/bucket`. */
  get location(): string {
    return this.config.endpoint
      ? `${this.config.endpoint.replace(/\/$/, "")}/${this.config.bucket}`
      : `s3://${this.config.bucket}`;
  }

  /**
   * Every object under `prefix`, following every page (ListObjectsV2), one page in memory at
   * a time. With `delimiter`, common prefixes come back as objects with size -1 and a key
   * ending in the delimiter. A listing longer than `maxPages` pages is refused
   * (InvalidInputError, exit 65) before the next page is asked for.
   */
  async *list(
    prefix: string,
    opts: { pageSize?: number; delimiter?: string; signal?: AbortSignal; maxPages?: number } = {},
  ): AsyncGenerator<S3Object> {
    let token: string | undefined;
    const seenTokens = new Set<string>();
    let pages = 0;
    do {
      if (opts.maxPages !== undefined && pages++ >= opts.maxPages) {
        throw new InvalidInputError(
          `list ${this.location}/${prefix}: more than ${opts.maxPages} pages, far more than ` +
            "an image needs: the listing was stopped there; --max-pages raises the limit",
          { details: { prefix, pages: opts.maxPages } },
        );
      }
      const page = await withRetries(
        () =>
          this.#send<ListObjectsV2CommandOutput>(
            new ListObjectsV2Command({
              Bucket: this.config.bucket,
              Prefix: prefix,
              MaxKeys: opts.pageSize,
              Delimiter: opts.delimiter,
              ContinuationToken: token,
              // Keys may hold characters XML 1.0 cannot carry (control characters); URL
              // encoding lets them through, to be judged (and refused) by the caller.
              EncodingType: "url",
            }),
            `list ${this.location}/${prefix}`,
            opts.signal,
          ),
        {
          policy: s3RetryPolicy(this.config.listAttempts, this.config.retryBaseDelayMs),
          signal: opts.signal,
          ...S3_RETRYABLE,
        },
      );
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix) {
          yield { key: this.#decodeKey(p.Prefix), size: -1, etag: "", lastModified: "" };
        }
      }
      for (const o of page.Contents ?? []) {
        yield {
          key: this.#decodeKey(o.Key ?? ""),
          size: o.Size ?? 0,
          etag: unquote(o.ETag),
          lastModified: o.LastModified ? o.LastModified.toISOString() : "",
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) {
        throw new S3RequestError(
          `list ${this.location}/${prefix}: truncated page without a token`,
          {
            retryable: false,
          },
        );
      }
      // A server that hands back a token it already gave would keep us listing forever.
      if (token !== undefined) {
        if (seenTokens.has(token)) {
          throw new S3RequestError(`list ${this.location}/${prefix}: the listing loops`, {
            retryable: false,
          });
        }
        seenTokens.add(token);
      }
    } while (token !== undefined);
  }

  /**
   * Open a GET of `key`. One attempt: the caller retries and resumes. A 412 (If-Match failed)
   * becomes {@linkcode ObjectChangedError}; everything else an {@linkcode S3RequestError}.
   */
  async get(key: string, opts: GetOptions = {}): Promise<GetResponse> {
    const start = opts.start ?? 0;
    const res = await this.#send<GetObjectCommandOutput>(
      new GetObjectCommand({
        Bucket: this.config.bucket,
        Key: key,
        Range: start > 0 ? `bytes=${start}-` : undefined,
        IfMatch: opts.ifMatch !== undefined ? `"${opts.ifMatch}"` : undefined,
      }),
      `GET ${this.location}/${key}`,
      opts.signal,
      key,
    );
    const body = res.Body as unknown as ReadableStream<Uint8Array> | undefined;
    const status = res.$metadata.httpStatusCode ?? 200;
    const contentLength = res.ContentLength ?? -1;
    let objectSize = contentLength;
    if (res.ContentRange) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange);
      if (!m || Number(m[1]) !== start) {
        await body?.cancel().catch(() => {});
        throw new S3RequestError(
          `GET ${this.location}/${key}: unexpected Content-Range ${
            JSON.stringify(res.ContentRange)
          } for bytes=${start}-`,
          { status, retryable: false },
        );
      }
      objectSize = Number(m[3]);
    }
    if (!body) {
      throw new S3RequestError(`GET ${this.location}/${key}: response without a body`, {
        status,
        retryable: true,
      });
    }
    return { status, body, contentLength, etag: unquote(res.ETag), objectSize };
  }

  /** A key from a listing with `encoding-type=url` (`+` is a space, as in form encoding). */
  #decodeKey(encoded: string): string {
    try {
      return decodeURIComponent(encoded.replace(/\+/g, " "));
    } catch {
      throw new S3RequestError(
        `list ${this.location}: malformed URL-encoded key ${JSON.stringify(encoded)}`,
        { retryable: false },
      );
    }
  }

  /** Release the SDK's resources. */
  destroy(): void {
    this.#client.destroy();
  }

  async #send<T>(
    // deno-lint-ignore no-explicit-any
    command: any,
    what: string,
    signal?: AbortSignal,
    key?: string,
  ): Promise<T> {
    // Headers must arrive in time; the body's own idle timeout is the reader's business.
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error("timed out waiting for response headers")),
      this.config.headersTimeoutMs ?? 15_000,
    );
    const abortSignal = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    try {
      return await this.#client.send(command, { abortSignal }) as T;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw classify(err, what, key, timeout.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Turn whatever the SDK or fetch threw into one of this module's errors. */
function classify(err: unknown, what: string, key: string | undefined, timedOut: boolean): Error {
  // A missing Deno permission is the caller's to report (with the flag), not the server's.
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    return err;
  }
  if (timedOut) {
    return new S3RequestError(`${what}: no response within the timeout`, {
      retryable: true,
      cause: err,
    });
  }
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode;
    const code = err.name;
    if (status === 412 && key !== undefined) {
      return new ObjectChangedError(key, "If-Match failed", err);
    }
    const retryAfterMs = parseRetryAfter(
      (err as unknown as { $response?: { headers?: Record<string, string> } }).$response
        ?.headers?.["retry-after"],
    );
    const throttled = status === 429 ||
      /SlowDown|Throttl|RequestTimeout|TooManyRequests|InternalError|ServiceUnavailable/.test(
        code,
      );
    const retryable = (status !== undefined && status >= 500) || throttled;
    // The server's own message, when it sent one worth reading (the SDK fills in
    // "UnknownError" or the code otherwise).
    const said = err.message && err.message !== code && err.message !== "UnknownError"
      ? `: ${err.message}`
      : "";
    return new S3RequestError(`${what}: ${status ?? "?"} ${explain(status, code)}${said}`, {
      status,
      code,
      retryable,
      retryAfterMs,
    });
  }
  // fetch's TypeError (refused, reset, DNS) and the SDK's own parse failures of a cut reply.
  const message = (err as Error)?.message ?? String(err);
  let all = message;
  for (let c = (err as Error)?.cause, i = 0; c && i < 4; c = (c as Error).cause, i++) {
    all += ` ${(c as Error).message ?? String(c)}`;
  }
  const unreachable = transportFailure(all);
  if (unreachable) {
    return new S3RequestError(
      `cannot reach the S3 endpoint (${unreachable}): check the network and --endpoint ` +
        `(or THINIMAGE_S3_ENDPOINT); ${what}`,
      { retryable: true, cause: err },
    );
  }
  return new S3RequestError(`${what}: ${message}`, { retryable: true, cause: err });
}

/** What fetch's long text says went wrong on the way, in a few words; undefined otherwise. */
function transportFailure(message: string): string | undefined {
  if (/connection refused/i.test(message)) return "connection refused";
  if (/dns error|failed to lookup|name or service not known|no address/i.test(message)) {
    return "host name not found";
  }
  if (/network is unreachable|no route to host/i.test(message)) return "network unreachable";
  if (/connection reset|broken pipe/i.test(message)) return "connection reset";
  if (/timed out/i.test(message)) return "connection timed out";
  return undefined;
}

function explain(status: number | undefined, code: string): string {
  if (status === 404) return code === "NoSuchBucket" ? "no such bucket" : "no such key";
  if (status === 403) return `access denied (${code}); check the credentials`;
  if (status === 301 || status === 307) return `wrong region or endpoint (${code})`;
  return code;
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function unquote(etag: string | undefined): string {
  return (etag ?? "").replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}
