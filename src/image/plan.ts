/**
 * Pure decisions over the catalogue of images, chains, blobs and activations: what each image
 * owns and shares, and what garbage collection may remove. No I/O: callers load the rows and
 * carry out the plan.
 *
 * @example
 * ```ts
 * import { planGc } from "./plan.ts";
 * const plan = planGc({
 *   images: [{ name: "a", layers: [{ sha256: "s1", chainId: "c1", size: 10 }] }],
 *   activations: [],
 *   chains: [{ chainId: "c1", parentChainId: null }, { chainId: "c9", parentChainId: null }],
 *   blobs: ["s1", "s9"],
 * });
 * plan.chains; // ["c9"]
 * plan.blobs;  // ["s9"]
 * ```
 * @module
 */

/** One layer of an image, as far as it is known. */
export interface PlanLayer {
  sha256: string | null;
  chainId: string | null;
  size: number;
  unpackedBytes?: number | null;
}

/** What the planner needs to know of an image. */
export interface PlanImage {
  name: string;
  layers: PlanLayer[];
}

/** Input of {@linkcode planGc}. */
export interface GcInput {
  images: PlanImage[];
  /** Activations keep the chain they were made from (and its ancestors). */
  activations: { name: string; chainId: string }[];
  chains: { chainId: string; parentChainId: string | null }[];
  blobs: string[];
}

/** What may be removed, chains ordered children first (a parent goes after its children). */
export interface GcPlan {
  chains: string[];
  blobs: string[];
}

/** Decide which chains and blobs no image or activation needs. */
export function planGc(input: GcInput): GcPlan {
  const keepChains = new Set<string>();
  const keepBlobs = new Set<string>();
  for (const img of input.images) {
    for (const l of img.layers) {
      if (l.chainId) keepChains.add(l.chainId);
      if (l.sha256) keepBlobs.add(l.sha256);
    }
  }
  const parentOf = new Map(input.chains.map((c) => [c.chainId, c.parentChainId]));
  for (const a of input.activations) {
    for (let c: string | null | undefined = a.chainId; c; c = parentOf.get(c)) keepChains.add(c);
  }
  // A chain a kept chain descends from stays: its device is the kept one's origin on disk.
  for (const c of [...keepChains]) {
    for (let p = parentOf.get(c); p; p = parentOf.get(p)) keepChains.add(p);
  }
  const depth = (c: string): number => {
    let d = 0;
    for (let p = parentOf.get(c); p && d < 1e6; p = parentOf.get(p)) d++;
    return d;
  };
  const chains = input.chains.map((c) => c.chainId).filter((c) => !keepChains.has(c))
    .sort((a, b) => depth(b) - depth(a) || a.localeCompare(b));
  const blobs = input.blobs.filter((b) => !keepBlobs.has(b)).sort();
  return { chains, blobs };
}

/** Bytes an image holds alone and bytes it shares with other images. */
export interface ImageUsage {
  name: string;
  ownBytes: number;
  sharedBytes: number;
}

/**
 * Split each image's layer bytes (unpacked when known, else blob size) into those of chains no
 * other image uses (own) and those of chains at least one other image also uses (shared).
 */
export function imageUsage(images: PlanImage[]): ImageUsage[] {
  const users = new Map<string, Set<string>>();
  for (const img of images) {
    for (const l of img.layers) {
      if (!l.chainId) continue;
      const set = users.get(l.chainId) ?? new Set<string>();
      set.add(img.name);
      users.set(l.chainId, set);
    }
  }
  return images.map((img) => {
    let own = 0;
    let shared = 0;
    for (const l of img.layers) {
      const bytes = l.unpackedBytes ?? l.size;
      if (l.chainId && (users.get(l.chainId)?.size ?? 0) > 1) shared += bytes;
      else own += bytes;
    }
    return { name: img.name, ownBytes: own, sharedBytes: shared };
  });
}
