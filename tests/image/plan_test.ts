import { assertEquals } from "../helpers/assert.ts";
import { imageUsage, planGc } from "../../src/image/plan.ts";

Deno.test("planGc keeps every chain and blob an image names, removes the rest children first", () => {
  const plan = planGc({
    images: [{ name: "a", layers: [{ sha256: "s1", chainId: "c1", size: 1 }] }],
    activations: [],
    chains: [
      { chainId: "c1", parentChainId: null },
      { chainId: "x1", parentChainId: null },
      { chainId: "x2", parentChainId: "x1" },
      { chainId: "x3", parentChainId: "x2" },
    ],
    blobs: ["s1", "s2"],
  });
  assertEquals(plan, { chains: ["x3", "x2", "x1"], blobs: ["s2"] });
});

Deno.test("planGc keeps an activation's chain and its ancestors after its image is gone", () => {
  const plan = planGc({
    images: [],
    activations: [{ name: "web", chainId: "c2" }],
    chains: [
      { chainId: "c1", parentChainId: null },
      { chainId: "c2", parentChainId: "c1" },
      { chainId: "c3", parentChainId: "c2" },
    ],
    blobs: ["s1"],
  });
  assertEquals(plan, { chains: ["c3"], blobs: ["s1"] });
});

Deno.test("planGc keeps the ancestors of a kept chain even when no image lists them", () => {
  const plan = planGc({
    images: [{ name: "a", layers: [{ sha256: "s2", chainId: "c2", size: 1 }] }],
    activations: [],
    chains: [{ chainId: "c1", parentChainId: null }, { chainId: "c2", parentChainId: "c1" }],
    blobs: [],
  });
  assertEquals(plan.chains, []);
});

Deno.test("imageUsage splits bytes into own and shared by chain", () => {
  const shared = { sha256: "s1", chainId: "c1", size: 100, unpackedBytes: 150 };
  const usage = imageUsage([
    { name: "a", layers: [shared, { sha256: "s2", chainId: "a2", size: 10 }] },
    { name: "b", layers: [shared, { sha256: "s3", chainId: "b2", size: 20 }] },
    { name: "c", layers: [{ sha256: "s1", chainId: null, size: 5 }] },
  ]);
  assertEquals(usage, [
    { name: "a", ownBytes: 10, sharedBytes: 150 },
    { name: "b", ownBytes: 20, sharedBytes: 150 },
    { name: "c", ownBytes: 5, sharedBytes: 0 },
  ]);
});
