import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { backoffDelay, checkPolicy, DEFAULT_RETRY } from "../../src/retry.ts";

Deno.test("delays double from the initial delay up to the cap", () => {
  const p = { ...DEFAULT_RETRY, jitter: 0 };
  assertEquals([1, 2, 3, 4, 5, 6, 7, 10].map((a) => backoffDelay(a, p)), [
    100,
    200,
    400,
    800,
    1600,
    3200,
    5000,
    5000,
  ]);
});

Deno.test("jitter takes at most its share off each delay", () => {
  const p = { ...DEFAULT_RETRY, jitter: 0.5 };
  assertEquals(backoffDelay(3, p, () => 0), 400);
  assertEquals(backoffDelay(3, p, () => 0.999999), 200);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(4, p);
    if (d < 400 || d > 800) throw new Error(`delay ${d} outside [400, 800]`);
  }
});

Deno.test("a policy out of range is refused where it is declared", () => {
  assertThrows(
    () => checkPolicy({ ...DEFAULT_RETRY, maxAttempts: 0 }, "m"),
    RangeError,
    "maxAttempts",
  );
  assertThrows(() => checkPolicy({ ...DEFAULT_RETRY, jitter: 2 }, "m"), RangeError, "jitter");
  assertThrows(() => checkPolicy({ ...DEFAULT_RETRY, factor: 0.5 }, "m"), RangeError, "factor");
});
