/**
 * A fault-injecting HTTP proxy on loopback, between thinimage and a real S3 server: it passes
 * bytes through untouched except for the requests a fault plan picks, which it answers with an
 * error status, cuts, stalls, truncates or gives another ETag. Raw TCP, so a cut is a real cut
 * of the connection, not an error the proxy's own HTTP stack would tidy up.
 *
 * Unsigned (anonymous) requests only: a proxy on another port changes the Host header that a
 * signature covers.
 *
 * In tests:
 * ```ts
 * import { startFaultProxy } from "../../scripts/fault-proxy.ts";
 * const proxy = startFaultProxy({
 *   upstream: "http://127.0.0.1:7480",
 *   fault: (req) => req.method === "GET" && req.n === 1 ? { kind: "reset", afterBytes: 1000 } : undefined,
 * });
 * // ... point the client at proxy.url ...
 * await proxy.close();
 * ```
 * From a shell (every matching request gets the fault, `--times` limits how many):
 *   deno run --allow-net=127.0.0.1 scripts/fault-proxy.ts --upstream http://127.0.0.1:7480 \
 *     --port 7481 --fault reset:100000 [--match '\.tar$'] [--times 1]
 * @module
 */
import { parseArgs } from "node:util";

/** A request as the proxy saw it. */
export interface ProxyRequest {
  /** 1-based order of arrival. */
  n: number;
  method: string;
  /** Path and query, as sent. */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** When it arrived (Date.now()). */
  at: number;
  /** The fault applied, if any. */
  fault?: Fault["kind"];
  /** The response's status, once its head passed (absent for a fault's own answer). */
  status?: number;
  /** Body bytes passed to the client so far: where downloads are counted. */
  bodyBytes?: number;
}

/** What to do to one request. */
export type Fault =
  /** Pass the head and `afterBytes` of the body, then close the connection mid-body. */
  | { kind: "reset"; afterBytes: number }
  /** Pass the head and `afterBytes` of the body, then send nothing more until the client quits. */
  | { kind: "stall"; afterBytes: number }
  /** Claim and send only `bytes` of the body (Content-Length rewritten): a clean, short reply. */
  | { kind: "truncate"; bytes: number }
  /** Answer with this status and an S3 error document instead of asking upstream. */
  | { kind: "status"; status: number; code?: string; headers?: Record<string, string> }
  /** Pass the response with another ETag header. */
  | { kind: "etag"; etag: string }
  /** Never answer: read the request, then nothing until the client gives up. */
  | { kind: "hang" };

/** Options for {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /** The real server, `http://host:port`. */
  upstream: string;
  /** Port to listen on (default: any free one). */
  port?: number;
  /**
   * The plan: a fault for a request, or undefined to pass it through. May be async, e.g. to
   * change the object upstream before answering.
   */
  fault?: (req: ProxyRequest) => Fault | undefined | Promise<Fault | undefined>;
}

/** A running proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Every request so far, in order. */
  requests: ProxyRequest[];
  /** Stop listening, close every open connection, and wait for the handlers. */
  close(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Start a proxy on 127.0.0.1. */
export function startFaultProxy(opts: FaultProxyOptions): FaultProxy {
  const up = new URL(opts.upstream);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: opts.port ?? 0 });
  const requests: ProxyRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  let closed = false;
  const accept = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      conns.add(conn);
      const h = handle(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        handlers.delete(h);
        try {
          conn.close();
        } catch { /* closed */ }
      });
      handlers.add(h);
    }
  })();

  async function handle(client: Deno.Conn): Promise<void> {
    const reqHead = await readHead(client);
    if (!reqHead) return;
    const { first, headers, rest } = reqHead;
    const [method, path] = first.split(" ");
    const req: ProxyRequest = { n: requests.length + 1, at: Date.now(), method, path, headers };
    requests.push(req);
    const fault = await opts.fault?.(req);
    req.fault = fault?.kind;
    if (fault?.kind === "hang") {
      const buf = new Uint8Array(1024);
      while (!closed && (await client.read(buf)) !== null) { /* discard */ }
      return;
    }
    if (fault?.kind === "status") {
      const code = fault.code ?? (fault.status === 403 ? "AccessDenied" : "ServiceUnavailable");
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
        `<Message>injected by fault-proxy</Message></Error>`;
      const extra = Object.entries(fault.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
      await writeAll(
        client,
        enc.encode(
          `HTTP/1.1 ${fault.status} Injected\r\nContent-Type: application/xml\r\n` +
            `Content-Length: ${
              enc.encode(body).length
            }\r\nConnection: close\r\n${extra}\r\n${body}`,
        ),
      );
      return;
    }
    const upstream = await Deno.connect({
      hostname: up.hostname,
      port: Number(up.port || 80),
    });
    conns.add(upstream);
    try {
      // One request per connection keeps the byte counting of faults simple.
      const lines = [first];
      for (const [k, v] of Object.entries(headers)) {
        if (k !== "connection" && k !== "host") lines.push(`${k}: ${v}`);
      }
      lines.push(`host: ${up.host}`, "connection: close", "", "");
      await writeAll(upstream, enc.encode(lines.join("\r\n")));
      if (rest.length) await writeAll(upstream, rest);
      const resHead = await readHead(upstream);
      if (!resHead) return;
      const resHeaders = { ...resHead.headers };
      const length = Number(resHeaders["content-length"] ?? NaN);
      let limit = Infinity;
      if (fault?.kind === "etag" && resHeaders["etag"] !== undefined) {
        resHeaders["etag"] = `"${fault.etag}"`;
      }
      if (fault?.kind === "truncate" && !Number.isNaN(length)) {
        limit = Math.min(length, fault.bytes);
        resHeaders["content-length"] = String(limit);
      }
      if (fault?.kind === "reset" || fault?.kind === "stall") limit = fault.afterBytes;
      resHeaders["connection"] = "close";
      const head = [resHead.first, ...Object.entries(resHeaders).map(([k, v]) => `${k}: ${v}`)]
        .join("\r\n") + "\r\n\r\n";
      await writeAll(client, enc.encode(head));
      req.status = Number(resHead.first.split(" ")[1]);
      let sent = 0;
      req.bodyBytes = 0;
      const send = async (chunk: Uint8Array) => {
        const part = chunk.subarray(0, Math.max(0, limit - sent));
        if (part.length) await writeAll(client, part);
        sent += part.length;
        req.bodyBytes = sent;
      };
      await send(resHead.rest);
      const buf = new Uint8Array(64 * 1024);
      while (sent < limit) {
        const n = await upstream.read(buf);
        if (n === null) break;
        await send(buf.subarray(0, n));
      }
      if (fault?.kind === "stall") {
        // Hold the connection open, silent, until the client gives up (or the proxy closes).
        while (!closed && (await client.read(buf)) !== null) { /* discard */ }
      }
    } finally {
      conns.delete(upstream);
      try {
        upstream.close();
      } catch { /* closed */ }
    }
  }

  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    requests,
    async close() {
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accept;
      await Promise.allSettled([...handlers]);
    },
  };
}

/** Read an HTTP head (up to the blank line); returns the extra bytes read past it. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ first: string; headers: Record<string, string>; rest: Uint8Array } | undefined> {
  let data = new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    const end = indexOfBlankLine(data);
    if (end >= 0) {
      const text = dec.decode(data.subarray(0, end));
      const [first, ...lines] = text.split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      return { first, headers, rest: data.slice(end + 4) };
    }
    if (data.length > 1024 * 1024) return undefined;
    const n = await conn.read(buf);
    if (n === null) return undefined;
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.length);
    data = next;
  }
}

function indexOfBlankLine(d: Uint8Array): number {
  for (let i = 0; i + 3 < d.length; i++) {
    if (d[i] === 13 && d[i + 1] === 10 && d[i + 2] === 13 && d[i + 3] === 10) return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** `reset:N`, `stall:N`, `truncate:N`, `status:503[:Retry-After]`, `etag:VALUE`. */
function parseFault(spec: string): Fault {
  const [kind, a, b] = spec.split(":");
  switch (kind) {
    case "reset":
    case "stall":
      return { kind, afterBytes: Number(a) };
    case "truncate":
      return { kind, bytes: Number(a) };
    case "status":
      return { kind, status: Number(a), headers: b ? { "Retry-After": b } : undefined };
    case "etag":
      return { kind, etag: a };
    case "hang":
      return { kind };
  }
  throw new Error(`unknown fault ${JSON.stringify(spec)}`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      upstream: { type: "string", default: "http://127.0.0.1:7480" },
      port: { type: "string", default: "7481" },
      fault: { type: "string" },
      match: { type: "string", default: "" },
      times: { type: "string" },
    },
  });
  const fault = values.fault ? parseFault(values.fault) : undefined;
  const match = new RegExp(values.match);
  let left = values.times ? Number(values.times) : Infinity;
  const proxy = startFaultProxy({
    upstream: values.upstream,
    port: Number(values.port),
    fault: (req) => {
      if (!fault || !match.test(req.path) || left <= 0) return undefined;
      left--;
      return fault;
    },
  });
  console.error(
    `fault-proxy on ${proxy.url} -> ${values.upstream} (${values.fault ?? "no faults"})`,
  );
}
