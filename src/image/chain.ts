/**
 * Layer chains: the identity of "layers 1..n applied in order", as OCI ChainIDs.
 *
 * A chain device holds the filesystem of one chain. Two images whose first n layers have the
 * same bytes share the chain ids (and so the devices) of those n layers, whatever their keys
 * or image names: that is what makes shared layers share blocks.
 *
 * @example
 * ```ts
 * import { chainIds } from "./chain.ts";
 * import { chainDeviceName } from "../names.ts";
 * const ids = await chainIds(["aa".repeat(32), "bb".repeat(32)]);
 * ids[0] === "sha256:" + "aa".repeat(32); // layer 1's chain id is its own digest
 * chainDeviceName(ids[1]); // "thinimage-chain-<64 hex>"
 * ```
 * @module
 */
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
  for (const hex of layerSha256s) out.push(await chainId(out.at(-1), hex));
  return out;
}

/**
 * The chain id of layer `layerSha256` (hex) applied onto the chain `parent` (none for the
 * first layer): one link of {@linkcode chainIds}, for callers that learn the layers one by one.
 */
export async function chainId(parent: string | undefined, layerSha256: string): Promise<string> {
  if (!HEX64.test(layerSha256)) {
    throw new TypeError(`not a sha256 hex digest: ${JSON.stringify(layerSha256)}`);
  }
  const layer = `sha256:${layerSha256}`;
  return parent === undefined ? layer : `sha256:${await sha256Hex(`${parent} ${layer}`)}`;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
