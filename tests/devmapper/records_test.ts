import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { openStore } from "../../src/store/db.ts";
import { DeviceRecords, MAX_THIN_ID } from "../../src/devmapper/records.ts";
import { checkDeviceName } from "../../src/names.ts";
import { InvalidInputError } from "../../src/errors.ts";

function records(nextThinId = 1) {
  const r = new DeviceRecords(openStore(":memory:"));
  r.upsertPool({
    name: "thinimage-pool",
    adopted: false,
    tableLine: "0 131072 thin-pool 7:0 7:1 128 0 1 error_if_no_space",
    blockSectors: 128,
    dataSectors: 131072,
    nextThinId,
  });
  return r;
}

Deno.test("ids are allocated in order, and an intent row is written with its owner", () => {
  const r = records();
  const a = r.beginCreate("thinimage-pool", "thinimage-a", 4096, undefined, "1@boot");
  const b = r.beginCreate("thinimage-pool", "thinimage-b", 4096, "thinimage-a", "1@boot");
  assertEquals([a.thinId, b.thinId], [1, 2]);
  assertEquals([a.state, a.intentOwner, b.origin], ["creating", "1@boot", "thinimage-a"]);
  r.setState("thinimage-a", "created");
  assertEquals([r.device("thinimage-a")!.state, r.device("thinimage-a")!.intentOwner], [
    "created",
    undefined,
  ]);
});

Deno.test("a freed id is not handed out again until the counter wraps", () => {
  const r = records();
  r.beginCreate("thinimage-pool", "thinimage-a", 4096, undefined, "o");
  r.drop("thinimage-a");
  assertEquals(r.beginCreate("thinimage-pool", "thinimage-b", 4096, undefined, "o").thinId, 2);
});

Deno.test("File exists: the taken id is reserved for good and the device moves on", () => {
  const r = records();
  r.beginCreate("thinimage-pool", "thinimage-a", 4096, undefined, "o");
  const moved = r.moveToNextId("thinimage-a", "taken in the pool");
  assertEquals(moved.thinId, 2);
  assertEquals(r.faultyIds("thinimage-pool"), [{ thinId: 1, reason: "taken in the pool" }]);
  r.drop("thinimage-a");
  assertEquals(r.beginCreate("thinimage-pool", "thinimage-b", 4096, undefined, "o").thinId, 3);
});

Deno.test("allocation wraps at 2^24 and skips used and faulty ids", () => {
  const r = records(MAX_THIN_ID);
  r.reserveId("thinimage-pool", 0, "foreign");
  const a = r.beginCreate("thinimage-pool", "thinimage-a", 4096, undefined, "o");
  const b = r.beginCreate("thinimage-pool", "thinimage-b", 4096, undefined, "o");
  assertEquals([a.thinId, b.thinId], [MAX_THIN_ID, 1]);
});

Deno.test("names must carry the prefix and stay plain; the schema enforces it too", () => {
  checkDeviceName("thinimage-layer-1.2_x+y");
  assertThrows(() => checkDeviceName("layer-1"), InvalidInputError, "must start with 'thinimage-'");
  assertThrows(() => checkDeviceName("thinimage-"), InvalidInputError);
  assertThrows(() => checkDeviceName("thinimage-a/../b"), InvalidInputError, "only letters");
  assertThrows(() => checkDeviceName("thinimage-" + "x".repeat(200)), InvalidInputError);
  const r = records();
  assertThrows(() => r.beginCreate("thinimage-pool", "other", 4096, undefined, "o"));
  assertThrows(() => r.beginCreate("thinimage-pool", "thinimage-odd", 1000, undefined, "o"));
});

Deno.test("a snapshot's intent row carries its origin's filesystem flag", () => {
  const r = records();
  assertEquals(
    r.beginCreate("thinimage-pool", "thinimage-a", 4096, undefined, "o").formatted,
    false,
  );
  const s = r.beginCreate("thinimage-pool", "thinimage-s", 4096, "thinimage-a", "o", true);
  assertEquals([s.state, s.formatted], ["creating", true]);
});
