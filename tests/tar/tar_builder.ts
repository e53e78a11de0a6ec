/**
 * Builds tar archives byte by byte for the tests, including the malformed ones no real tar
 * writes: every header field can be overridden, checksums broken, records truncated.
 *
 * @example
 * ```ts
 * import { Tar } from "./tar_builder.ts";
 * const bytes = new Tar().file("etc/hosts", "127.0.0.1 localhost\n").dir("etc").end().bytes();
 * ```
 * @module
 */

const enc = new TextEncoder();

/** Header fields; strings are encoded as UTF-8, Uint8Array used raw. */
export interface HeaderOpts {
  name?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  typeflag?: string;
  linkname?: string | Uint8Array;
  uname?: string;
  gname?: string;
  prefix?: string | Uint8Array;
  /** "ustar" (POSIX, default), "gnu", or raw 8 bytes for magic+version. */
  magic?: "ustar" | "gnu" | Uint8Array;
  /** Raw bytes written at an offset after everything else (before the checksum). */
  raw?: [number, Uint8Array | string][];
  /** Add this to the correct checksum (0 = correct). */
  checksumDelta?: number;
}

/** A tar archive under construction. */
export class Tar {
  readonly #parts: Uint8Array[] = [];

  /** One 512-byte header. */
  header(o: HeaderOpts): this {
    const h = new Uint8Array(512);
    put(h, 0, 100, o.name ?? "");
    octal(h, 100, 8, o.mode ?? 0o644);
    octal(h, 108, 8, o.uid ?? 0);
    octal(h, 116, 8, o.gid ?? 0);
    octal(h, 124, 12, o.size ?? 0);
    octal(h, 136, 12, o.mtime ?? 1700000000);
    h[156] = (o.typeflag ?? "0").charCodeAt(0);
    put(h, 157, 100, o.linkname ?? "");
    const magic = o.magic ?? "ustar";
    if (magic === "ustar") put(h, 257, 8, "ustar\x0000");
    else if (magic === "gnu") put(h, 257, 8, "ustar  \x00");
    else h.set(magic, 257);
    put(h, 265, 32, o.uname ?? "");
    put(h, 297, 32, o.gname ?? "");
    if (o.prefix !== undefined) put(h, 345, 155, o.prefix);
    for (const [off, bytes] of o.raw ?? []) {
      h.set(typeof bytes === "string" ? enc.encode(bytes) : bytes, off);
    }
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    sum += o.checksumDelta ?? 0;
    const cs = sum.toString(8).padStart(6, "0");
    h.set(enc.encode(cs), 148);
    h[154] = 0;
    h[155] = 0x20;
    this.#parts.push(h);
    return this;
  }

  /** Data bytes, padded to a block (or `pad: false` to leave them unpadded: truncation tests). */
  data(d: string | Uint8Array, pad = true): this {
    const bytes = typeof d === "string" ? enc.encode(d) : d;
    this.#parts.push(bytes);
    if (pad && bytes.length % 512) this.#parts.push(new Uint8Array(512 - (bytes.length % 512)));
    return this;
  }

  file(name: string | Uint8Array, content: string | Uint8Array = "", o: HeaderOpts = {}): this {
    const bytes = typeof content === "string" ? enc.encode(content) : content;
    return this.header({ name, size: bytes.length, ...o }).data(bytes);
  }

  dir(name: string | Uint8Array, o: HeaderOpts = {}): this {
    return this.header({ name, typeflag: "5", mode: 0o755, ...o });
  }

  symlink(name: string | Uint8Array, target: string | Uint8Array, o: HeaderOpts = {}): this {
    return this.header({ name, typeflag: "2", linkname: target, mode: 0o777, ...o });
  }

  hardlink(name: string | Uint8Array, target: string | Uint8Array, o: HeaderOpts = {}): this {
    return this.header({ name, typeflag: "1", linkname: target, ...o });
  }

  /** A pax header (`x`, or `g` when global) with the given records. */
  pax(records: [string, string | Uint8Array][], global = false, o: HeaderOpts = {}): this {
    return this.paxRaw(paxRecords(records), global, o);
  }

  /** A pax header with an arbitrary body. */
  paxRaw(body: string | Uint8Array, global = false, o: HeaderOpts = {}): this {
    const bytes = typeof body === "string" ? enc.encode(body) : body;
    return this.header({
      name: "PaxHeader",
      typeflag: global ? "g" : "x",
      size: bytes.length,
      ...o,
    })
      .data(bytes);
  }

  /** A GNU long-name (`L`) or long-link (`K`) record, NUL-terminated as GNU tar writes it. */
  gnuLong(type: "L" | "K", value: string | Uint8Array): this {
    const v = typeof value === "string" ? enc.encode(value) : value;
    const body = new Uint8Array(v.length + 1);
    body.set(v);
    return this.header({ name: "././@LongLink", typeflag: type, size: body.length, magic: "gnu" })
      .data(body);
  }

  /** Raw bytes. */
  raw(b: Uint8Array): this {
    this.#parts.push(b);
    return this;
  }

  /** The end-of-archive marker: two zero blocks. */
  end(): this {
    this.#parts.push(new Uint8Array(1024));
    return this;
  }

  bytes(): Uint8Array {
    const n = this.#parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  /** Write to a new temporary file; returns its path. */
  write(dir: string, name = "layer.tar"): string {
    const path = `${dir}/${name}`;
    Deno.writeFileSync(path, this.bytes());
    return path;
  }
}

/** Encode pax records with correct self-including lengths. */
export function paxRecords(records: [string, string | Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of records) {
    const kv = concat(
      enc.encode(` ${k}=`),
      typeof v === "string" ? enc.encode(v) : v,
      enc.encode("\n"),
    );
    let len = kv.length + 1;
    while (String(len).length + kv.length !== len) len = String(len).length + kv.length;
    parts.push(concat(enc.encode(String(len)), kv));
  }
  return concat(...parts);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function put(h: Uint8Array, off: number, len: number, v: string | Uint8Array): void {
  const b = typeof v === "string" ? enc.encode(v) : v;
  h.set(b.subarray(0, len), off);
}

function octal(h: Uint8Array, off: number, len: number, v: number): void {
  put(h, off, len, v.toString(8).padStart(len - 1, "0") + "\0");
}
