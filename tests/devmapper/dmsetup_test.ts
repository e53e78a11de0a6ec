import { assert, assertEquals } from "../helpers/assert.ts";
import {
  DmBusyError,
  DmError,
  dmErrorFrom,
  dmErrorFromIoctl,
  DmExistsError,
  DmNoDataError,
  DmNoSuchDeviceError,
  Dmsetup,
  DmUnavailableError,
} from "../../src/devmapper/dmsetup.ts";
import { DmIoctlError } from "../../src/devmapper/dm_control.ts";
import {
  ConflictError,
  exitCodeOf,
  InvalidInputError,
  TemporaryError,
  ThinimageError,
} from "../../src/errors.ts";
import { isPermanentByDefault } from "../../src/engine/errors.ts";

const argv = ["/usr/sbin/dmsetup", "message", "thinimage-pool", "0", "create_thin 7"];

Deno.test("dmErrorFrom: a typed error carrying argv and stderr, message naming both", () => {
  const err = dmErrorFrom({
    argv,
    code: 1,
    stderr:
      "device-mapper: message ioctl on thinimage-pool  failed: File exists\nCommand failed.\n",
  });
  assert(err instanceof DmExistsError);
  assertEquals(err.argv, argv);
  assertEquals(err.stderr, "device-mapper: message ioctl on thinimage-pool  failed: File exists");
  assertEquals(
    err.message,
    "message thinimage-pool 0 create_thin 7: device-mapper: message ioctl on thinimage-pool  failed: File exists",
  );
  assertEquals(err.details?.status, 1);
});

Deno.test("dmErrorFrom: one class per kind; busy is temporary (75)", () => {
  const of = (stderr: string) => dmErrorFrom({ argv, code: 1, stderr });
  assert(of("failed: No data available") instanceof DmNoDataError);
  assert(of("failed: No such device or address") instanceof DmNoSuchDeviceError);
  assert(
    of("Failure to communicate with kernel device-mapper driver.") instanceof DmUnavailableError,
  );
  const busy = of("remove ioctl on x  failed: Device or resource busy");
  assert(busy instanceof DmBusyError);
  assertEquals(exitCodeOf(busy), 75);
  const other = of("failed: Invalid argument");
  assertEquals(other.constructor, DmError);
  assertEquals(exitCodeOf(other), 1);
  assertEquals(of("").message, "message thinimage-pool 0 create_thin 7: exit status 1");
});

Deno.test("dmErrorFromIoctl: an ioctl's errno, the same classes and words as dmsetup's stderr", () => {
  const args = ["message", "thinimage-pool", "0", "create_snap 5 3"];
  const of = (op: string, errno: number) =>
    dmErrorFromIoctl(args, new DmIoctlError(op, "thinimage-pool", errno));
  const exists = of("message", 17);
  assert(exists instanceof DmExistsError);
  assertEquals(
    exists.message,
    "message thinimage-pool 0 create_snap 5 3: device-mapper: message ioctl on thinimage-pool failed: File exists",
  );
  assertEquals(exists.argv, ["/usr/sbin/dmsetup", ...args]);
  // Each errno means what dmsetup's words for it mean to classifyDmStderr.
  for (
    const [op, errno] of [
      ["message", 17],
      ["create", 16],
      ["status", 6],
      ["reload", 19],
      ["message", 61],
      ["remove", 16],
      ["reload", 22],
    ] as const
  ) {
    const ioctl = of(op, errno);
    const tool = dmErrorFrom({ argv: ioctl.argv, code: 1, stderr: ioctl.stderr });
    assertEquals(ioctl.constructor, tool.constructor, `${op} errno ${errno}`);
  }
  assert(of("create", 16) instanceof DmExistsError, "a taken name is EBUSY from the kernel");
  assert(of("resume", 16) instanceof DmBusyError);
  assert(of("status", 6) instanceof DmNoSuchDeviceError);
  assert(of("message", 61) instanceof DmNoDataError);
  const node = dmErrorFromIoctl(
    ["create", "x"],
    new DmIoctlError("mknod", "x", 17, "/dev/mapper/x is not a block device: mknod"),
  );
  assertEquals(node.constructor, DmError, "a bad node is no taken name");
});

Deno.test("a busy device is retried by the engine and the machines; classified refusals are not", () => {
  const busy = dmErrorFrom({ argv, code: 1, stderr: "failed: Device or resource busy" });
  assertEquals([busy.permanent, isPermanentByDefault(busy)], [false, false]);
  for (
    const err of [
      new InvalidInputError("bad"),
      new TemporaryError("low space"),
      new ConflictError("not ours"),
      new ThinimageError("refused", { permanent: true }),
    ]
  ) {
    assert(isPermanentByDefault(err), err.message);
  }
  assert(!isPermanentByDefault(new ThinimageError("unclassified")));
  assert(!isPermanentByDefault(new Error("plain")));
});

/** What `dmsetup status -v` prints above the status line (dmsetup 1.02.185, Debian 12). */
const VERBOSE_INFO = `Name:              thinimage-p
State:             ACTIVE
Read Ahead:        256
Tables present:    LIVE
Open count:        0
Event number:      0
Major, minor:      253, 0
Number of targets: 1

`;

/** Answers every read of one pool from canned text, counting the processes it stands for. */
class Canned extends Dmsetup {
  calls: string[] = [];
  constructor() {
    super({ backend: "dmsetup" }); // the stand-in answers for the program
  }
  override run(args: string[]): Promise<string> {
    this.calls.push(args[0]);
    switch (args[0]) {
      case "table":
        return Promise.resolve(`0 2097152 thin-pool 7:0 7:1 128 32768 1 error_if_no_space\n`);
      case "status":
        return Promise.resolve(
          (args[1] === "-v" ? VERBOSE_INFO : "") +
            "0 2097152 thin-pool 3 10/1000 20/1000 - rw discard_passdown error_if_no_space - 256\n",
        );
      case "info":
        return Promise.resolve("253:0\n");
      default:
        return Promise.resolve("");
    }
  }
}

Deno.test("dmsetup: readAhead reads table, status and number in two processes; each answers once", async () => {
  const dm = new Canned();
  dm.readAhead("thinimage-p");
  assertEquals(dm.calls, ["table", "status"], "started before anyone asks");
  dm.readAhead("thinimage-p");
  assertEquals(dm.calls.length, 2, "not read twice");
  assert((await dm.table("thinimage-p"))?.includes("thin-pool 7:0 7:1"));
  assertEquals(
    await dm.status("thinimage-p"),
    "0 2097152 thin-pool 3 10/1000 20/1000 - rw discard_passdown error_if_no_space - 256",
    "the status line alone, as a plain status read gives it",
  );
  assertEquals(await dm.deviceNumber("thinimage-p"), "253:0");
  assertEquals(dm.calls.length, 2, "the answers read ahead served the calls");
  await dm.table("thinimage-p");
  assertEquals(dm.calls.length, 3, "once: the next call reads again");
  // Another name is read as ever.
  await dm.status("thinimage-q");
  await dm.deviceNumber("thinimage-q");
  assertEquals(dm.calls.slice(3), ["status", "info"]);
});

Deno.test("dmsetup: a verbose status without the number falls back on reading it alone", async () => {
  class Terse extends Canned {
    override run(args: string[]): Promise<string> {
      if (args[0] === "status") {
        this.calls.push("status");
        return Promise.resolve("0 2097152 thin-pool 3 10/1000 20/1000 - rw - 256\n");
      }
      return super.run(args);
    }
  }
  const dm = new Terse();
  dm.readAhead("thinimage-p");
  assertEquals(await dm.deviceNumber("thinimage-p"), "253:0");
  assertEquals(await dm.status("thinimage-p"), "0 2097152 thin-pool 3 10/1000 20/1000 - rw - 256");
  assertEquals(dm.calls, ["table", "status", "info"]);
});

Deno.test("dmsetup: what this object changes drops the answers read ahead", async () => {
  const dm = new Canned();
  dm.readAhead("thinimage-p");
  await dm.table("thinimage-p");
  await dm.message("thinimage-p", "create_thin 1");
  assertEquals(dm.calls, ["table", "status", "message"]);
  await dm.status("thinimage-p");
  await dm.deviceNumber("thinimage-p");
  assertEquals(dm.calls, ["table", "status", "message", "status", "info"]);
});
