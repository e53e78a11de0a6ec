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
import { BLOCK, checksumMatches, hasUstarMagic, isZeroBlock } from "../tar/header.ts";
import { sniffMagic, startsWith } from "../tar/magic.ts";

/** Formats a layer blob may have. */
export type LayerFormat = "tar" | "gzip";

/** How many leading bytes {@linkcode detectLayerFormat} wants: one tar header block. */
export const FORMAT_SNIFF_BYTES = BLOCK;

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
  const known = sniffMagic(head);
  if (known) return known;
  if (head.length < FORMAT_SNIFF_BYTES) {
    return `a ${head.length}-byte file, too short for a tar header (${hexPrefix(head)})`;
  }
  if (hasUstarMagic(head)) {
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
  return isZeroBlock(block) || checksumMatches(block);
}

function hexPrefix(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}
