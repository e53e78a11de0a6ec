/**
 * What a layer blob is, from its first bytes (never from its key): a plain tar or a
 * gzip-compressed tar are accepted; anything else is refused, naming what it looks like so the
 * person who published it knows what to fix.
 *
 * @example
 * ```ts
 * import { detectLayerFormat, FORMAT_SNIFF_BYTES } from "./format.ts";
 * const head = new Uint8Array([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]);
 * detectLayerFormat(head); // "gzip"
 * ```
 * @module
 */
import { InvalidInputError } from "../errors.ts";

/** Formats a layer blob may have. */
export type LayerFormat = "tar" | "gzip";

/** How many leading bytes {@linkcode detectLayerFormat} wants: one tar header block. */
export const FORMAT_SNIFF_BYTES = 512;

/** Magic numbers of formats that are not layers, for the refusal message. */
const OTHER_FORMATS: readonly { name: string; magic: readonly number[]; offset?: number }[] = [
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: "bzip2", magic: [0x42, 0x5a, 0x68] },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: "lzip", magic: [0x4c, 0x5a, 0x49, 0x50] },
  { name: "lz4", magic: [0x04, 0x22, 0x4d, 0x18] },
  { name: "lzma", magic: [0x5d, 0x00, 0x00] },
  { name: "unix compress (.Z)", magic: [0x1f, 0x9d] },
  { name: "zip", magic: [0x50, 0x4b, 0x03, 0x04] },
  { name: "zip (empty)", magic: [0x50, 0x4b, 0x05, 0x06] },
  { name: "7-zip", magic: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { name: "rar", magic: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07] },
  { name: "cpio", magic: [0x30, 0x37, 0x30, 0x37, 0x30] },
  { name: "ar/deb", magic: [0x21, 0x3c, 0x61, 0x72, 0x63, 0x68, 0x3e] },
  { name: "squashfs", magic: [0x68, 0x73, 0x71, 0x73] },
  { name: "ELF executable", magic: [0x7f, 0x45, 0x4c, 0x46] },
  { name: "PDF", magic: [0x25, 0x50, 0x44, 0x46] },
  { name: "PNG", magic: [0x89, 0x50, 0x4e, 0x47] },
  { name: "HTML/XML", magic: [0x3c] },
  { name: "JSON", magic: [0x7b] },
];

/**
 * Tell a plain tar from a gzip stream by the first bytes of a blob. `head` holds the first
 * {@linkcode FORMAT_SNIFF_BYTES} bytes, or the whole blob when it is shorter.
 *
 * Throws {@linkcode InvalidInputError} (exit 65) naming the format the bytes look like when they
 * are neither; `what` names the blob in that message.
 *
 * @example
 * ```ts
 * import { detectLayerFormat } from "./format.ts";
 * const tar = new Uint8Array(1024); // an empty archive: two zero blocks
 * detectLayerFormat(tar, "images/x/1.tar"); // "tar"
 * ```
 */
export function detectLayerFormat(head: Uint8Array, what = "layer blob"): LayerFormat {
  if (startsWith(head, [0x1f, 0x8b, 0x08])) return "gzip";
  if (head.length >= FORMAT_SNIFF_BYTES && isTarHeader(head.subarray(0, FORMAT_SNIFF_BYTES))) {
    return "tar";
  }
  const looksLike = describeFormat(head);
  throw new InvalidInputError(
    `${what} is not a tar or gzip-compressed tar: it looks like ${looksLike}`,
    { details: { format: looksLike } },
  );
}

/** A name for what `head` looks like: "zstd", "an empty file", "unknown data (first bytes ...)". */
export function describeFormat(head: Uint8Array): string {
  if (head.length === 0) return "an empty file";
  if (startsWith(head, [0x1f, 0x8b])) return "gzip with an unknown compression method";
  for (const f of OTHER_FORMATS) if (startsWith(head, f.magic)) return f.name;
  if (head.length < FORMAT_SNIFF_BYTES) {
    return `a ${head.length}-byte file, too short for a tar header (${hexPrefix(head)})`;
  }
  if (head[257] === 0x75 && ascii(head.subarray(257, 262)) === "ustar") {
    return "a tar header with a bad checksum";
  }
  return `unknown data (first bytes ${hexPrefix(head)})`;
}

/**
 * True when `block` (512 bytes) is a tar header whose checksum adds up, or the all-zero
 * end-of-archive block an empty archive starts with. Old v7 headers have no magic, so the
 * checksum is what decides.
 */
export function isTarHeader(block: Uint8Array): boolean {
  if (block.length !== FORMAT_SNIFF_BYTES) return false;
  if (block.every((b) => b === 0)) return true;
  const field = ascii(block.subarray(148, 156)).replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (!/^[0-7]{1,7}$/.test(field)) return false;
  const stored = parseInt(field, 8);
  let unsigned = 0;
  for (let i = 0; i < block.length; i++) unsigned += i >= 148 && i < 156 ? 0x20 : block[i];
  // Some historic writers summed signed chars; accept either, as GNU tar does.
  let signed = 0;
  for (let i = 0; i < block.length; i++) {
    signed += i >= 148 && i < 156 ? 0x20 : (block[i] << 24) >> 24;
  }
  return stored === unsigned || stored === signed;
}

function startsWith(data: Uint8Array, magic: readonly number[]): boolean {
  return data.length >= magic.length && magic.every((b, i) => data[i] === b);
}

function ascii(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function hexPrefix(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}
