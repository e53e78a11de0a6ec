/**
 * Layer chains: the identity of "layers 1..n applied in order", as OCI ChainIDs.
 *
 * A chain device holds the filesystem of one chain. Two images whose first n layers have the
 * same bytes share the chain ids (and so the devices) of those n layers, whatever their keys
 * or image names: that is what makes shared layers share blocks.
 *
 * @example
 * ```ts
 * import { chainIds, chainDeviceName } from "./chain.ts";
 * const ids = await chainIds(["aa".repeat(32), "bb".repeat(32)]);
 * ids[0] === "sha256:" + "aa".repeat(32); // layer 1's chain id is its own digest
 * chainDeviceName(ids[1]); // "thinimage-chain-<64 hex>"
 * ```
 * @module
 */
/** Prefix of every kernel object name thinimage creates. */
export const KERNEL_PREFIX = "thinimage-";

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The chain id of each prefix of `layerSha256s` (hex digests, in application order):
 * `chain[0] = sha256:L1`, `chain[i] = sha256(chain[i-1] + " " + sha256:Li)`.
 *
 * Web Crypto rather than node:crypto: this module is on every command's start-up path, and
 * loading Node's crypto layer costs more than a whole bare `deno run` (16 ms against 13 on the
 * development machine).
 */
export async function chainIds(layerSha256s: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  let parent: string | undefined;
  for (const hex of layerSha256s) {
    if (!HEX64.test(hex)) throw new TypeError(`not a sha256 hex digest: ${JSON.stringify(hex)}`);
    const id: string = parent === undefined
      ? `sha256:${hex}`
      : `sha256:${await sha256Hex(`${parent} sha256:${hex}`)}`;
    out.push(id);
    parent = id;
  }
  return out;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The device-mapper name of a chain's device. */
export function chainDeviceName(chainId: string): string {
  const hex = chainId.replace(/^sha256:/, "");
  if (!HEX64.test(hex)) throw new TypeError(`not a chain id: ${JSON.stringify(chainId)}`);
  return `${KERNEL_PREFIX}chain-${hex}`;
}

/** Activation names follow image-name rules: they end up in /dev/mapper. */
export const ACTIVATION_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The device-mapper name of an activation. */
export function activationDeviceName(name: string): string {
  if (!ACTIVATION_NAME.test(name)) throw new TypeError(`not an activation name: ${name}`);
  return `${KERNEL_PREFIX}act-${name}`;
}
