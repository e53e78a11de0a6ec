import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { isName, parseImageName } from "../../src/names.ts";

const isImageName = (n: string) => isName("image", n);
import { InvalidInputError } from "../../src/errors.ts";

Deno.test("image names: the bucket's names and edge lengths are accepted", () => {
  for (const n of ["golang", "node", "python", "a", "0", "my.img_1-x", "a".repeat(63)]) {
    assertEquals(parseImageName(n), n);
  }
});

Deno.test("image names: anything that could escape or confuse the prefix is refused with 65", () => {
  for (
    const n of [
      "",
      "..",
      ".hidden",
      "-x",
      "_x",
      "Golang",
      "a/b",
      "a b",
      "a\nb",
      "a".repeat(64),
      "é",
      "a\u0000",
    ]
  ) {
    assertEquals(isImageName(n), false, n);
    const err = assertThrows(() => parseImageName(n), InvalidInputError, "invalid image name");
    assertEquals(err.exitCode, 65);
  }
});

Deno.test("image names: the refusal escapes control characters", () => {
  const err = assertThrows(() => parseImageName("x\u001b[2J"), InvalidInputError);
  assertEquals(err.message.includes("\u001b"), false);
  assertEquals(err.message.includes("\\u001b"), true);
});
