// The header block's checksum read a word at a time must agree with the byte-at-a-time sum,
// down to blocks of 0xff bytes, where the word sum's lanes come closest to overflowing.
import { assertEquals } from "../helpers/assert.ts";
import { BLOCK, checksumMatches, HEADER } from "../../src/tar/header.ts";

/** Store `sum` (or the block's own unsigned sum) as the octal checksum field. */
function withChecksum(block: Uint8Array, sum?: number): Uint8Array {
  const { offset, length } = HEADER.checksum;
  block.fill(0x20, offset, offset + length);
  const own = block.reduce((a, b) => a + b, 0);
  const text = (sum ?? own).toString(8).padStart(6, "0") + "\0 ";
  block.set(new TextEncoder().encode(text), offset);
  return block;
}

function both(block: Uint8Array): [boolean, boolean] {
  return [checksumMatches(block), checksumMatches(block, new Uint32Array(block.buffer))];
}

Deno.test("header: the word-at-a-time checksum agrees with the byte sum", () => {
  let seed = 17;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
  for (let i = 0; i < 500; i++) {
    const block = new Uint8Array(BLOCK).map(() => (i % 3 === 0 ? 0xff : rand()));
    assertEquals(both(withChecksum(block)), [true, true], `block ${i}`);
    const off = withChecksum(block.slice(), block.reduce((a, b) => a + b, 0) + 1 + (i % 7));
    assertEquals(both(off)[0], both(off)[1], `block ${i}, checksum off by some`);
  }
  const bad = withChecksum(new Uint8Array(BLOCK).fill(0xff));
  bad[0] = 0xfe;
  assertEquals(both(bad), [false, false]);
});
