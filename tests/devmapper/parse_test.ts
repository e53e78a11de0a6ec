// Every input below was captured from dmsetup, losetup and thin_ls on Debian's 6.1 kernel
// (inside scripts/vm.sh).
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import {
  classifyDmStderr,
  formatThinPoolTable,
  formatThinTable,
  isThinTableOf,
  parseDmsetupLs,
  parseDmsetupTables,
  parseLosetupJ,
  parsePoolStatus,
  parseSize,
  parseSuspendedNames,
  parseThinLsIds,
  parseThinPoolTable,
  parseThinTable,
  parseVerboseDm,
} from "../../src/devmapper/parse.ts";
import { InvalidInputError } from "../../src/errors.ts";

Deno.test("pool status: a healthy pool", () => {
  const s = parsePoolStatus(
    "0 131072 thin-pool 0 111/1024 0/1024 - rw discard_passdown error_if_no_space - 256 ",
  );
  assertEquals(s, {
    transactionId: "0",
    usedMetaBlocks: 111,
    totalMetaBlocks: 1024,
    usedDataBlocks: 0,
    totalDataBlocks: 1024,
    heldMetadataRoot: undefined,
    readOnly: false,
    outOfDataSpace: false,
    needsCheck: false,
    failed: false,
    errorIfNoSpace: true,
  });
});

Deno.test("pool status: out of data space, a held metadata snapshot, a large transaction id", () => {
  const full = parsePoolStatus(
    "0 131072 thin-pool 5 118/1024 1024/1024 - out_of_data_space discard_passdown error_if_no_space - 256",
  );
  assert(full.outOfDataSpace && !full.readOnly);
  assertEquals([full.usedDataBlocks, full.transactionId], [1024, "5"]);
  const held = parsePoolStatus(
    "0 131072 thin-pool 18446744073709551615 113/1024 0/1024 18 rw discard_passdown error_if_no_space - 256",
  );
  assertEquals([held.heldMetadataRoot, held.transactionId], [18, "18446744073709551615"]);
});

Deno.test("pool status: read-only with needs_check, and Fail", () => {
  const ro = parsePoolStatus(
    "0 131072 thin-pool 3 200/1024 10/1024 - ro discard_passdown queue_if_no_space needs_check 256",
  );
  assert(ro.readOnly && ro.needsCheck && !ro.errorIfNoSpace);
  const fail = parsePoolStatus("0 131072 thin-pool Fail");
  assert(fail.failed && fail.readOnly);
});

Deno.test("pool status: anything else is refused, naming the line", () => {
  assertThrows(() => parsePoolStatus("0 8192 thin 0 -"), InvalidInputError, "0 8192 thin 0 -");
  assertThrows(
    () => parsePoolStatus("0 8192 thin-pool 1 x/2 0/1 - rw"),
    InvalidInputError,
    "unreadable",
  );
});

Deno.test("thin-pool table: parsed, and rendered back the way the kernel prints it", () => {
  const line = "0 131072 thin-pool 7:0 7:1 128 0 1 error_if_no_space";
  const t = parseThinPoolTable(line + " ");
  assertEquals(t, {
    sectors: 131072,
    metaDev: "7:0",
    dataDev: "7:1",
    blockSectors: 128,
    lowWaterBlocks: 0,
    features: ["error_if_no_space"],
  });
  assertEquals(formatThinPoolTable(t), line);
  const ref = parseThinPoolTable("0 4194304 thin-pool 7:2 7:3 2048 32768 0");
  assertEquals([ref.blockSectors, ref.features], [2048, []]);
  assertEquals(formatThinPoolTable(ref), "0 4194304 thin-pool 7:2 7:3 2048 32768 0");
  assertThrows(() => parseThinPoolTable("0 8192 thin 253:0 1"), InvalidInputError);
  assertThrows(
    () => parseThinPoolTable("0 131072 thin-pool 7:0 7:1 128 0 2 skip_block_zeroing"),
    InvalidInputError,
    "feature count",
  );
});

Deno.test("thin table: pool device and id; other targets are undefined", () => {
  assertEquals(parseThinTable("0 8192 thin 253:0 1"), {
    sectors: 8192,
    poolDev: "253:0",
    thinId: 1,
  });
  assertEquals(parseThinTable("0 2048 error"), undefined);
});

Deno.test("dmsetup ls, losetup -j, thin_ls", () => {
  assertEquals(parseDmsetupLs("p\t(253:0)\nt1\t(253:1)\n"), [
    { name: "p", dev: "253:0" },
    { name: "t1", dev: "253:1" },
  ]);
  assertEquals(parseDmsetupLs("t1\t(253, 1)\n"), [{ name: "t1", dev: "253:1" }]);
  assertEquals(parseDmsetupLs("No devices found\n"), []);
  assertEquals(parseLosetupJ("/dev/loop0: [0024]:524294 (/var/tmp/tmp.Dp/meta)\n"), ["/dev/loop0"]);
  assertEquals(parseLosetupJ(""), []);
  assertEquals(parseThinLsIds("1 \n  7\n"), [1, 7]);
  assertEquals(parseThinLsIds(""), []);
  assertThrows(() => parseThinLsIds("DEV MAPPED_BLOCKS\n"), InvalidInputError, "thin_ls");
});

Deno.test("dmsetup stderr becomes one kind per failure", () => {
  const cases: [string, string][] = [
    [
      "device-mapper: create ioctl on p  failed: Device or resource busy\nCommand failed.\n",
      "exists",
    ],
    ["device-mapper: message ioctl on p  failed: File exists\nCommand failed.\n", "exists"],
    ["device-mapper: message ioctl on p  failed: No data available\nCommand failed.\n", "no-data"],
    [
      "device-mapper: reload ioctl on t2 (253:2) failed: No data available\nCommand failed.\n",
      "no-data",
    ],
    [
      "device-mapper: remove ioctl on t1  failed: Device or resource busy\nCommand failed.\n",
      "busy",
    ],
    [
      "device-mapper: message ioctl on p  failed: Device or resource busy\nCommand failed.\n",
      "busy",
    ],
    [
      "device-mapper: remove ioctl on nosuch  failed: No such device or address\nCommand failed.\n",
      "no-such-device",
    ],
    ["Device does not exist.\nCommand failed.\n", "no-such-device"],
    ["device-mapper: message ioctl on p  failed: Invalid argument\nCommand failed.\n", "other"],
    [
      "/dev/mapper/control: open failed: No such device\nFailure to communicate with kernel device-mapper driver.\n",
      "no-driver",
    ],
  ];
  for (const [stderr, kind] of cases) assertEquals(classifyDmStderr(stderr), kind, stderr);
});

Deno.test("sizes: binary suffixes; anything else names the flag", () => {
  assertEquals(parseSize("2G"), 2 * 2 ** 30);
  assertEquals(parseSize("64k"), 65536);
  assertEquals(parseSize("512MiB"), 512 * 2 ** 20);
  assertEquals(parseSize("1048576"), 1048576);
  assertThrows(() => parseSize("2X", "--data-size"), InvalidInputError, "--data-size '2X'");
  assertThrows(() => parseSize("0"), InvalidInputError, "out of range");
  assertThrows(() => parseSize("-1G"), InvalidInputError);
});

Deno.test("dmsetup info: the suspended devices", () => {
  assertEquals(parseSuspendedNames("p:Active\nt1:Suspended\nweird:name:Suspended\n"), [
    "t1",
    "weird:name",
  ]);
  assertEquals(parseSuspendedNames("No devices found\n"), []);
});

Deno.test("dmsetup table of every device: by name, multi-target lines kept together", () => {
  const t = parseDmsetupTables(
    "p: 0 131072 thin-pool 7:0 7:1 128 0 1 error_if_no_space \nt1: 0 8192 thin 253:0 1\nlv: 0 8 linear 7:2 0\nlv: 8 8 linear 7:3 0\n",
  );
  assertEquals([...t.keys()], ["p", "t1", "lv"]);
  assertEquals(t.get("t1"), "0 8192 thin 253:0 1");
  assertEquals(t.get("lv"), "0 8 linear 7:2 0\n8 8 linear 7:3 0");
  assertEquals(parseDmsetupTables("No devices found\n").size, 0);
});

Deno.test("thin tables: formatted as parsed, and one test of 'live as this device'", () => {
  const t = { sectors: 8192, poolDev: "253:0", thinId: 1 };
  assertEquals(parseThinTable(formatThinTable(t)), t);
  assert(isThinTableOf("0 8192 thin 253:0 1", { thinId: 1 }));
  assert(isThinTableOf("0 8192 thin 253:0 1", { ...t }));
  assert(!isThinTableOf("0 8192 thin 253:4 1", { thinId: 1, poolDev: "253:0" }));
  assert(!isThinTableOf("0 4096 thin 253:0 1", { ...t }));
  assert(!isThinTableOf("0 8192 thin 253:0 2", { thinId: 1 }));
  assert(!isThinTableOf("0 8192 error", { thinId: 1 }));
  assert(!isThinTableOf(undefined, { thinId: 1 }));
});

Deno.test("dmsetup status -v: the status line as a plain status gives it, and the device number", () => {
  const out = `Name:              thinimage-phases
State:             ACTIVE
Read Ahead:        256
Tables present:    LIVE
Open count:        12
Event number:      0
Major, minor:      253, 0
Number of targets: 1

0 4194304 thin-pool 0 425/4096 108/32768 - rw discard_passdown error_if_no_space - 1024 
`;
  assertEquals(parseVerboseDm(out), {
    lines:
      "0 4194304 thin-pool 0 425/4096 108/32768 - rw discard_passdown error_if_no_space - 1024",
    dev: "253:0",
  });
  assertEquals(parsePoolStatus(parseVerboseDm(out).lines).usedDataBlocks, 108);
  // Without the info block (not verbose): the lines, and no number.
  assertEquals(parseVerboseDm("0 8192 thin 253:0 1\n"), {
    lines: "0 8192 thin 253:0 1",
    dev: undefined,
  });
});
