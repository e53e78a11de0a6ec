import { assert, assertEquals } from "../helpers/assert.ts";
import {
  DmBusyError,
  DmError,
  dmErrorFrom,
  DmExistsError,
  DmNoDataError,
  DmNoSuchDeviceError,
  DmUnavailableError,
} from "../../src/devmapper/dmsetup.ts";
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
