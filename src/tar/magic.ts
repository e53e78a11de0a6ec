/**
 * What the first bytes of a blob say it is, when it is not a plain or gzip-compressed tar: the
 * one table of magic numbers, read by the layer source and the reader (to name a compression
 * they refuse) and by `image/format.ts` (to name whatever a downloaded blob looks like).
 *
 * @example
 * ```ts
 * import { sniffMagic, sniffOtherCompression } from "./magic.ts";
 * const head = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
 * sniffOtherCompression(head); // "zstd"
 * sniffMagic(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])); // "ELF executable"
 * ```
 * @module
 */

/** A format known by its leading bytes. */
interface Magic {
  readonly name: string;
  readonly bytes: readonly number[];
  /** A compression format: a layer compressed with it is refused as such. */
  readonly compression?: true;
}

/** Formats a layer blob is not, by magic number; no entry is a prefix of another. */
const MAGIC: readonly Magic[] = [
  { name: "zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd], compression: true },
  { name: "bzip2", bytes: [0x42, 0x5a, 0x68], compression: true },
  { name: "xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], compression: true },
  { name: "lzip", bytes: [0x4c, 0x5a, 0x49, 0x50], compression: true },
  { name: "lz4", bytes: [0x04, 0x22, 0x4d, 0x18], compression: true },
  { name: "lzma", bytes: [0x5d, 0x00, 0x00], compression: true },
  { name: "compress (.Z)", bytes: [0x1f, 0x9d], compression: true },
  { name: "zip", bytes: [0x50, 0x4b, 0x03, 0x04] },
  { name: "zip (empty)", bytes: [0x50, 0x4b, 0x05, 0x06] },
  { name: "7-zip", bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { name: "rar", bytes: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07] },
  { name: "cpio", bytes: [0x30, 0x37, 0x30, 0x37, 0x30] },
  { name: "ar/deb", bytes: [0x21, 0x3c, 0x61, 0x72, 0x63, 0x68, 0x3e] },
  { name: "squashfs", bytes: [0x68, 0x73, 0x71, 0x73] },
  { name: "ELF executable", bytes: [0x7f, 0x45, 0x4c, 0x46] },
  { name: "PDF", bytes: [0x25, 0x50, 0x44, 0x46] },
  { name: "PNG", bytes: [0x89, 0x50, 0x4e, 0x47] },
  { name: "HTML/XML", bytes: [0x3c] },
  { name: "JSON", bytes: [0x7b] },
];

/** The name of the non-layer format `head` starts with, if it is one of the known ones. */
export function sniffMagic(head: Uint8Array): string | undefined {
  return MAGIC.find((m) => startsWith(head, m.bytes))?.name;
}

/** The name of the compression format `head` starts with, if it is one we refuse. */
export function sniffOtherCompression(head: Uint8Array): string | undefined {
  return MAGIC.find((m) => m.compression && startsWith(head, m.bytes))?.name;
}

/** gzip's two leading bytes: the one compression a layer may have. */
const GZIP: readonly number[] = [0x1f, 0x8b];

/** True when `head` starts as a gzip stream does (the layer source then inflates it). */
export function isGzip(head: Uint8Array): boolean {
  return startsWith(head, GZIP);
}

/** True when `data` begins with the bytes `magic`. */
export function startsWith(data: Uint8Array, magic: readonly number[]): boolean {
  if (data.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (data[i] !== magic[i]) return false;
  return true;
}
