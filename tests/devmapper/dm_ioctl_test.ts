// The device-mapper ioctl ABI as bytes (linux/dm-ioctl.h, version 4): requests as the kernel
// reads them and replies as it writes them. The same requests against a real kernel:
// tests/vm/devmapper/ioctl_test.ts.
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import {
  align8,
  decodeDev,
  DM_CMD,
  DM_FLAG,
  DM_HEADER_SIZE,
  DM_SPEC_SIZE,
  DmEncodeError,
  DmReplyError,
  formatTargets,
  makedev,
  packHeader,
  packMessage,
  packTableLoad,
  parseMessageOutput,
  parseReply,
  parseTableText,
  parseTargets,
  REPLY_SIZES,
  requestCode,
} from "../../src/devmapper/dm_ioctl.ts";

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const text = (b: Uint8Array, off: number, len: number) => {
  const s = b.subarray(off, off + len);
  return new TextDecoder().decode(s.subarray(0, s.indexOf(0)));
};

Deno.test("dm ioctl: request numbers are _IOWR(0xfd, cmd, 312 bytes)", () => {
  // DM_DEV_CREATE and DM_TABLE_STATUS as strace prints them on x86-64.
  assertEquals(requestCode(DM_CMD.DEV_CREATE), 0xc138fd03n);
  assertEquals(requestCode(DM_CMD.TABLE_LOAD), 0xc138fd09n);
  assertEquals(requestCode(DM_CMD.TABLE_STATUS), 0xc138fd0cn);
  assertEquals(requestCode(DM_CMD.TARGET_MSG), 0xc138fd0en);
});

Deno.test("dm ioctl: the header's fields at the ABI's offsets", () => {
  const b = packHeader({ name: "thinimage-p", uuid: "U-1", flags: DM_FLAG.STATUS_TABLE }, 16384);
  const v = view(b);
  assertEquals(b.length, 16384);
  assertEquals([v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true)], [4, 0, 0]);
  assertEquals(v.getUint32(12, true), 16384, "data_size: the whole buffer, room for the reply");
  assertEquals(v.getUint32(16, true), DM_HEADER_SIZE, "data_start: right after the header");
  assertEquals(v.getUint32(28, true), DM_FLAG.STATUS_TABLE);
  assertEquals(text(b, 48, 128), "thinimage-p");
  assertEquals(text(b, 176, 129), "U-1");
  assertEquals(DM_HEADER_SIZE % 8, 0);
});

Deno.test("dm ioctl: names that do not fit with their NUL are refused, not cut", () => {
  packHeader({ name: "n".repeat(127) });
  assertThrows(() => packHeader({ name: "n".repeat(128) }), DmEncodeError, "takes 127");
  assertThrows(() => packHeader({ name: "é".repeat(64) }), DmEncodeError, "128 bytes");
  packHeader({ name: "x", uuid: "u".repeat(128) });
  assertThrows(() => packHeader({ name: "x", uuid: "u".repeat(129) }), DmEncodeError);
  assertThrows(() => packHeader({ name: "a\0b" }), DmEncodeError, "NUL");
  assertThrows(() => packHeader({ name: "x" }, 100), DmEncodeError);
});

Deno.test("dm ioctl: a table load packs specs 8-byte aligned, next counted from each spec", () => {
  const targets = [
    { start: 0, length: 2097152, type: "thin", params: "253:0 7" }, // 7+1 bytes: 48 in all
    { start: 2097152, length: 8, type: "zero", params: "" }, // 1 byte: 41, padded to 48
    { start: 2097160, length: 8, type: "error", params: "abcdefghi" },
  ];
  const b = packTableLoad("t1", targets, DM_FLAG.READONLY);
  const v = view(b);
  assertEquals(v.getUint32(20, true), 3, "target_count");
  assertEquals(v.getUint32(28, true), DM_FLAG.READONLY);
  assertEquals(v.getUint32(12, true), b.length, "data_size is the request's length");
  assertEquals(b.length, DM_HEADER_SIZE + 48 + 48 + 56);
  let off = DM_HEADER_SIZE;
  const seen = [];
  for (let i = 0; i < 3; i++) {
    assertEquals(off % 8, 0);
    seen.push({
      start: Number(v.getBigUint64(off, true)),
      length: Number(v.getBigUint64(off + 8, true)),
      type: text(b, off + 24, 16),
      params: text(b, off + DM_SPEC_SIZE, b.length - off - DM_SPEC_SIZE),
    });
    off += v.getUint32(off + 20, true);
  }
  assertEquals(seen, targets);
  assertEquals(off, b.length);
  assertThrows(
    () => packTableLoad("t", [{ start: 0, length: 1, type: "t".repeat(16), params: "" }]),
    DmEncodeError,
  );
});

Deno.test("dm ioctl: a message is a sector and a NUL-terminated string after the header", () => {
  const b = packMessage("pool", "create_snap 5 3");
  const v = view(b);
  assertEquals(v.getBigUint64(DM_HEADER_SIZE, true), 0n);
  assertEquals(text(b, DM_HEADER_SIZE + 8, 64), "create_snap 5 3");
  assertEquals(b.length, align8(DM_HEADER_SIZE + 8 + 16));
  assertEquals(v.getUint32(12, true), b.length);
  assertEquals(packMessage("pool", "x", 0, 16384).length, 16384, "room for output asked");
});

/** A reply as the kernel's retrieve_status writes it: next counts from data_start. */
function reply(
  targets: { start: number; length: number; type: string; params: string }[],
  o: { flags?: number; size?: number; dev?: bigint; mangle?: (v: DataView) => void } = {},
): Uint8Array {
  const b = packHeader({ name: "x" }, o.size ?? 4096);
  const v = view(b);
  const enc = new TextEncoder();
  let off = DM_HEADER_SIZE;
  for (const t of targets) {
    v.setBigUint64(off, BigInt(t.start), true);
    v.setBigUint64(off + 8, BigInt(t.length), true);
    b.set(enc.encode(t.type), off + 24);
    const p = enc.encode(t.params);
    b.set(p, off + DM_SPEC_SIZE);
    const next = align8(off + DM_SPEC_SIZE + p.length + 1);
    v.setUint32(off + 20, next - DM_HEADER_SIZE, true);
    off = next;
  }
  v.setUint32(12, off, true); // data_size: what was used
  v.setUint32(20, targets.length, true);
  v.setUint32(28, (o.flags ?? 0) | DM_FLAG.ACTIVE_PRESENT, true);
  v.setBigUint64(40, o.dev ?? ((253n << 8n) | 4n), true);
  v.setInt32(24, 1, true);
  o.mangle?.(v);
  return b;
}

Deno.test("dm ioctl: a table reply reads back as dmsetup prints it", () => {
  const targets = [
    { start: 0, length: 8192, type: "thin", params: "253:0 1" },
    { start: 8192, length: 8, type: "zero", params: "" },
  ];
  const b = reply(targets);
  const r = parseReply(b);
  assertEquals([r.dev, r.openCount, r.targetCount], ["253:4", 1, 2]);
  assertEquals(parseTargets(b), targets);
  assertEquals(formatTargets(parseTargets(b)), "0 8192 thin 253:0 1\n8192 8 zero");
  assertEquals(parseTargets(reply([])), [], "a device without a live table");
});

Deno.test("dm ioctl: replies that break the rules are refused", () => {
  const one = [{ start: 0, length: 8, type: "thin", params: "253:0 1" }];
  const two = [...one, { start: 8, length: 8, type: "zero", params: "" }];
  assertThrows(
    () => parseTargets(reply(one, { flags: DM_FLAG.BUFFER_FULL })),
    DmReplyError,
    "full",
  );
  // A target count beyond the specs written.
  assertThrows(() => parseTargets(reply(one, { mangle: (v) => v.setUint32(20, 2, true) })));
  // next pointing back at the first spec, or past the end.
  assertThrows(
    () => parseTargets(reply(two, { mangle: (v) => v.setUint32(DM_HEADER_SIZE + 20, 0, true) })),
    DmReplyError,
    "goes back",
  );
  assertThrows(
    () =>
      parseTargets(reply(two, { mangle: (v) => v.setUint32(DM_HEADER_SIZE + 20, 1 << 20, true) })),
    DmReplyError,
    "outside",
  );
  // A misaligned next.
  assertThrows(
    () => parseTargets(reply(two, { mangle: (v) => v.setUint32(DM_HEADER_SIZE + 20, 52, true) })),
    DmReplyError,
  );
  // Parameters without their NUL before data_size.
  assertThrows(
    () => parseTargets(reply(one, { mangle: (v) => v.setUint32(12, DM_HEADER_SIZE + 44, true) })),
    DmReplyError,
    "past the reply's end",
  );
  assertThrows(() => parseTargets(reply(one, { mangle: (v) => v.setUint32(16, 8, true) })));
  assertThrows(() => parseReply(new Uint8Array(100)), DmReplyError);
});

Deno.test("dm ioctl: a message's output only when the kernel says there is some", () => {
  const b = packMessage("p", "x", 0, 1024);
  assertEquals(parseMessageOutput(b), "");
  const v = view(b);
  b.set(new TextEncoder().encode("out\0"), DM_HEADER_SIZE);
  v.setUint32(28, DM_FLAG.DATA_OUT, true);
  assertEquals(parseMessageOutput(b), "out");
});

Deno.test("dm ioctl: device numbers: the kernel's encoding in, glibc's makedev out", () => {
  assertEquals(decodeDev((253n << 8n) | 4n), { major: 253, minor: 4 });
  // Minor 300 spills into the high bits: (minor & 0xff) | major << 8 | (minor & ~0xff) << 12.
  assertEquals(decodeDev(0x2cn | (253n << 8n) | (0x100n << 12n)), { major: 253, minor: 300 });
  assertEquals(makedev(253, 4), 0xfd04n);
  assertEquals(makedev(253, 300), 0x10fd2cn);
  assertEquals(makedev(4096, 1), (4096n << 32n) | 1n, "major bits above 12 go to bit 32 on");
});

Deno.test("dm ioctl: table text as dmsetup create --table takes it", () => {
  assertEquals(parseTableText("0 8192 thin 253:0 1"), [
    { start: 0, length: 8192, type: "thin", params: "253:0 1" },
  ]);
  assertEquals(
    parseTableText("0 131072 thin-pool 7:0  7:1 128 0 1 error_if_no_space\n8 8 zero\n"),
    [
      { start: 0, length: 131072, type: "thin-pool", params: "7:0 7:1 128 0 1 error_if_no_space" },
      { start: 8, length: 8, type: "zero", params: "" },
    ],
  );
  assertThrows(() => parseTableText(""), DmEncodeError, "empty");
  assertThrows(() => parseTableText("zero 8 0"), DmEncodeError, "not a table line");
  assert(REPLY_SIZES.length > 1 && REPLY_SIZES.every((n, i) => i === 0 || n > REPLY_SIZES[i - 1]));
});
