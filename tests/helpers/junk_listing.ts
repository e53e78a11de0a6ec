/**
 * A hostile bucket on loopback, as issue 13 found one: an image prefix holding `pages` pages
 * of 1,000 junk keys of about 930 bytes each (zero-byte objects cost an attacker nothing),
 * then `1.tar`. Only what the CLI asks of it is served: ListObjectsV2 pages of the prefix, and
 * GETs of `1.tar` (a small valid tar with its MD5 as ETag). Counts what it was asked.
 *
 * Shared by tests/retrieve/junk_listing_test.ts and bench/diag/junk_listing.ts.
 * @module
 */
import { createHash } from "node:crypto";
import { makeTar } from "./s3.ts";

/** A running hostile listing server. */
export interface JunkListing {
  endpoint: string;
  bucket: string;
  image: string;
  /** Listing pages served. */
  pages: number;
  /** Object GETs served. */
  gets: number;
  close(): Promise<void>;
}

/** Start the server on 127.0.0.1 (a free port). */
export function startJunkListing(opts: { pages?: number; keysPerPage?: number } = {}): JunkListing {
  const pages = opts.pages ?? 300;
  const perPage = opts.keysPerPage ?? 1000;
  const bucket = "junk-bucket";
  const image = "junk";
  const prefix = `images/${image}/`;
  const tar = makeTar({ "etc/hello": "hello\n" });
  const md5 = createHash("md5").update(tar).digest("hex");
  const pad = "x".repeat(900);
  const state: JunkListing = {
    endpoint: "",
    bucket,
    image,
    pages: 0,
    gets: 0,
    close: () => server.shutdown(),
  };
  const contents = (key: string, size: number, etag: string) =>
    `<Contents><Key>${encodeURIComponent(key)}</Key>` +
    `<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;${etag}&quot;</ETag>` +
    `<Size>${size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === `/${bucket}/${prefix}1.tar`) {
      state.gets++;
      return new Response(tar as Uint8Array<ArrayBuffer>, {
        headers: {
          etag: `"${md5}"`,
          "content-length": String(tar.length),
          "content-type": "application/x-tar",
          "last-modified": "Thu, 01 Jan 2026 00:00:00 GMT",
        },
      });
    }
    if (url.pathname !== `/${bucket}/` && url.pathname !== `/${bucket}`) {
      return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 });
    }
    state.pages++;
    const page = Number(url.searchParams.get("continuation-token") ?? "0");
    const last = page >= pages;
    const keys: string[] = [];
    if (last) keys.push(contents(`${prefix}1.tar`, tar.length, md5));
    else {
      for (let i = 0; i < perPage; i++) {
        keys.push(
          contents(`${prefix}junk-${page}-${i}-${pad}`, 0, "d41d8cd98f00b204e9800998ecf8427e"),
        );
      }
    }
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n` +
      `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
      `<Name>${bucket}</Name><Prefix>${encodeURIComponent(prefix)}</Prefix>` +
      `<KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>` +
      `<IsTruncated>${!last}</IsTruncated>` +
      (last ? "" : `<NextContinuationToken>${page + 1}</NextContinuationToken>`) +
      keys.join("") + `</ListBucketResult>`;
    return new Response(body, { headers: { "content-type": "application/xml" } });
  });
  state.endpoint = `http://127.0.0.1:${server.addr.port}`;
  return state;
}

/** What one CLI run against the server cost. */
export interface CliCost {
  code: number;
  seconds: number;
  maxRssMiB: number;
  stderrLines: number;
  stderr: string;
}

/**
 * Run `deno run -A MAIN --state-dir DIR ARGS...` under GNU time, with the server as endpoint.
 */
export async function runCli(
  main: string,
  listing: JunkListing,
  stateDir: string,
  args: string[],
): Promise<CliCost> {
  const timeFile = await Deno.makeTempFile();
  try {
    const out = await new Deno.Command("/usr/bin/time", {
      args: [
        "-f",
        "%e %M",
        "-o",
        timeFile,
        Deno.execPath(),
        "run",
        "-A",
        main,
        "--state-dir",
        stateDir,
        ...args,
      ],
      env: {
        THINIMAGE_S3_ENDPOINT: listing.endpoint,
        THINIMAGE_BUCKET: listing.bucket,
        NO_COLOR: "1",
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const [secs, kib] = (await Deno.readTextFile(timeFile)).trim().split("\n").pop()!.split(" ");
    const stderr = new TextDecoder().decode(out.stderr);
    return {
      code: out.code,
      seconds: Number(secs),
      maxRssMiB: Math.round(Number(kib) / 1024),
      stderrLines: stderr.split("\n").filter((l) => l !== "").length,
      stderr,
    };
  } finally {
    await Deno.remove(timeFile);
  }
}
