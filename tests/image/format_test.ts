import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { makeTar } from "../helpers/s3.ts";
import { detectLayerFormat, isTarHeader } from "../../src/image/format.ts";
import { InvalidInputError } from "../../src/errors.ts";

const bytes = (...b: number[]) => {
  const out = new Uint8Array(512);
  out.set(b);
  return out;
};

Deno.test("format: a tar with a valid header checksum is tar", () => {
  assertEquals(detectLayerFormat(makeTar({ "etc/hostname": "x\n" })), "tar");
});

Deno.test("format: GNU tar output (the fixture generator's) is tar", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/f`, "hello");
    const out = await new Deno.Command("/usr/bin/tar", {
      args: ["--format=gnu", "-c", "-C", dir, "f"],
      stdout: "piped",
    }).output();
    assertEquals(detectLayerFormat(out.stdout.subarray(0, 512)), "tar");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("format: an empty archive (zero blocks) is tar", () => {
  assertEquals(detectLayerFormat(new Uint8Array(1024)), "tar");
});

Deno.test("format: gzip is detected by its magic, whatever follows", () => {
  assertEquals(detectLayerFormat(bytes(0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3)), "gzip");
});

Deno.test("format: other formats are refused with 65, naming what they look like", () => {
  const cases: [Uint8Array, string][] = [
    [bytes(0x28, 0xb5, 0x2f, 0xfd), "zstd"],
    [bytes(0x42, 0x5a, 0x68, 0x39), "bzip2"],
    [bytes(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00), "xz"],
    [bytes(0x50, 0x4b, 0x03, 0x04), "zip"],
    [bytes(0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c), "7-zip"],
    [bytes(0x7f, 0x45, 0x4c, 0x46), "ELF"],
    [bytes(0x1f, 0x8b, 0x07), "gzip with an unknown compression method"],
    [new Uint8Array(0), "an empty file"],
    [new Uint8Array(100).fill(0x41), "too short for a tar header"],
    [new Uint8Array(512).fill(0x41), "unknown data (first bytes 41 41"],
  ];
  for (const [head, name] of cases) {
    const err = assertThrows(
      () => detectLayerFormat(head, "images/x/1.tar"),
      InvalidInputError,
      name,
    );
    assertEquals(err.exitCode, 65);
    assertEquals(err.message.startsWith("images/x/1.tar is not a tar"), true, err.message);
  }
});

Deno.test("format: a tar header with one flipped byte fails its checksum", () => {
  const tar = makeTar({ a: "b" });
  tar[10] ^= 0xff;
  assertEquals(isTarHeader(tar.subarray(0, 512)), false);
  assertThrows(() => detectLayerFormat(tar), InvalidInputError, "bad checksum");
});
