import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "../helpers/assert.ts";
import { chainIds } from "../../src/image/chain.ts";
import { activationDeviceName, chainDeviceName } from "../../src/names.ts";
import { createHash } from "node:crypto";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

Deno.test("chainIds: layer 1 is its own digest, later ones hash the parent with the layer", async () => {
  const ids = await chainIds([A, B]);
  assertEquals(ids[0], `sha256:${A}`);
  const want = createHash("sha256").update(`sha256:${A} sha256:${B}`).digest("hex");
  assertEquals(ids[1], `sha256:${want}`);
});

Deno.test("chainIds: a shared prefix gives shared ids, a different order does not", async () => {
  const x = await chainIds([A, B, C]);
  const y = await chainIds([A, B, A]);
  assertEquals(x.slice(0, 2), y.slice(0, 2));
  assertNotEquals(x[2], y[2]);
  assertNotEquals((await chainIds([A, B]))[1], (await chainIds([B, A]))[1]);
});

Deno.test("chainIds refuses anything but lowercase hex digests", async () => {
  await assertRejects(() => chainIds(["A".repeat(64)]), TypeError);
  await assertRejects(() => chainIds(["../x"]), TypeError);
});

Deno.test("device names carry the thinimage- prefix and fit dm's 127-byte limit", async () => {
  const name = chainDeviceName((await chainIds([A]))[0]);
  assert(name.startsWith("thinimage-chain-"));
  assert(name.length < 128);
  assertEquals(activationDeviceName("web-1"), "thinimage-act-web-1");
  assertThrows(() => activationDeviceName("../x"), TypeError);
  assertThrows(() => chainDeviceName("sha256:xyz"), TypeError);
});
