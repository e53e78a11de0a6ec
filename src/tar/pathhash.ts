/**
 * Compact memory of paths: a keyed 53-bit hash of each path instead of the path itself, in an
 * open-addressing table of numbers. The rules remember every path a layer creates (for
 * hardlink targets); at 1,000,000 entries of up to 4,096 bytes the strings alone would be
 * gigabytes, the table is ~16-32 bytes an entry.
 *
 * The hash is two 32-bit multiplicative lanes seeded at random per process (not
 * cryptographic; the seed keeps an attacker from predicting where a path lands, so the table
 * cannot be flooded into long probe runs). Two different paths share a hash with probability
 * ~2^-53 a pair: ~n²/2^54 for a layer of n paths (~6e-5 at a million). What a collision costs
 * is said where the table is used (`rules.ts`).
 *
 * @example
 * ```ts
 * import { PathHasher, HashTable } from "./pathhash.ts";
 * const h = new PathHasher();
 * const t = new HashTable();
 * t.set(h.hash("usr/bin"), 7);
 * t.get(h.hash("usr/bin")); // 7
 * h.prefixes("usr/bin/env", (key) => console.log(t.get(key))); // 7 (for "usr/bin"), then undefined
 * ```
 * @module
 */

const M1 = 0x01000193; // FNV prime
const M2 = 0x9e3779b1; // golden ratio
const TWO32 = 2 ** 32;

/** murmur3's finalizer: every input bit reaches every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hashes paths (strings, hashed by UTF-16 code unit) to non-zero integers below 2^53. */
export class PathHasher {
  readonly #s1: number;
  readonly #s2: number;

  constructor(seed?: Uint32Array) {
    const s = seed ?? crypto.getRandomValues(new Uint32Array(2));
    this.#s1 = s[0] | 0;
    this.#s2 = s[1] | 0;
  }

  /** The hash of `s` (the same as `prefixes` reports for a prefix spelled the same). */
  hash(s: string): number {
    return mix(this.#s1, this.#s2, s);
  }

  /**
   * The hash of `name` in directory number `dir` (an inode): as if hashing `dir` then `name`,
   * without building the string.
   */
  hashIn(dir: number, name: string): number {
    // Both halves of `dir` into both lanes: the table probes from one lane's bits, so a lane
    // blind to the directory would start every directory's "f1" at the same slot.
    const lo = dir >>> 0;
    const hi = Math.floor(dir / TWO32);
    const a = Math.imul(Math.imul(this.#s1 ^ lo, M1) ^ hi, M1);
    let b = Math.imul(this.#s2 ^ lo, M2);
    b = Math.imul(b ^ (b >>> 15) ^ hi, M2);
    return mix(a, b ^ (b >>> 15), name);
  }

  /**
   * Call `fn` with the hash of each proper prefix of `path` that ends before a "/" ("a", then
   * "a/b" for "a/b/c"), in order, until `fn` returns true; one pass over `path`. Returns whether
   * `fn` did.
   */
  prefixes(path: string, fn: (key: number) => boolean): boolean {
    let a = this.#s1;
    let b = this.#s2;
    for (let i = 0; i < path.length; i++) {
      const c = path.charCodeAt(i);
      if (c === 0x2f && fn(key(a, b, i))) return true;
      a = Math.imul(a ^ c, M1);
      b = Math.imul(b ^ c, M2);
      b ^= b >>> 15;
    }
    return false;
  }
}

/** The key of `s` fed into lanes that start at `a` and `b`. */
function mix(a: number, b: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, M1);
    b = Math.imul(b ^ c, M2);
    b ^= b >>> 15;
  }
  return key(a, b, s.length);
}

/** 21 bits of one lane (the length mixed in) and 32 of the other; never 0 (the empty slot). */
function key(a: number, b: number, length: number): number {
  const hi = fmix(a ^ Math.imul(length, 0x27d4eb2d)) >>> 11;
  const lo = fmix(b);
  return hi * TWO32 + lo || 1;
}

/**
 * A map from non-zero integer keys below 2^53 (uniformly spread, as {@linkcode PathHasher}
 * makes them) to non-negative numbers: linear probing in two Float64Arrays, grown by doubling
 * at 3/4 full. 16 bytes a slot.
 */
export class HashTable {
  #keys: Float64Array;
  #values: Float64Array;
  #mask: number;
  #size = 0;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity) n *= 2;
    this.#keys = new Float64Array(n);
    this.#values = new Float64Array(n);
    this.#mask = n - 1;
  }

  /** Keys stored. */
  get size(): number {
    return this.#size;
  }

  get(key: number): number | undefined {
    const keys = this.#keys;
    for (let i = (key >>> 0) & this.#mask;; i = (i + 1) & this.#mask) {
      const k = keys[i];
      if (k === key) return this.#values[i];
      if (k === 0) return undefined;
    }
  }

  set(key: number, value: number): void {
    const keys = this.#keys;
    let i = (key >>> 0) & this.#mask;
    for (;; i = (i + 1) & this.#mask) {
      const k = keys[i];
      if (k === key) {
        this.#values[i] = value;
        return;
      }
      if (k === 0) break;
    }
    keys[i] = key;
    this.#values[i] = value;
    if (++this.#size * 4 > keys.length * 3) this.#grow();
  }

  #grow(): void {
    const keys = this.#keys;
    const values = this.#values;
    this.#keys = new Float64Array(keys.length * 2);
    this.#values = new Float64Array(keys.length * 2);
    this.#mask = keys.length * 2 - 1;
    this.#size = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.set(keys[i], values[i]);
  }
}
