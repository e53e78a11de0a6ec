/**
 * Device-mapper through its ioctls on `/dev/mapper/control`, called through libc
 * (src/host/libc.ts), for the commands that hold the ffi grant: no process per operation,
 * where each `dmsetup` start costs a tenth of a second or more under emulation.
 *
 * The sequences are dmsetup's: `create` is DEV_CREATE, TABLE_LOAD, then DEV_SUSPEND without
 * the suspend flag (a resume), and a load or resume that fails removes the half-made device
 * again; then, as `dmsetup create --verifyudev` does when no udev made it, the block node
 * `/dev/mapper/NAME`. Failures are {@linkcode DmIoctlError}s carrying the errno; the typed
 * errors callers branch on are made from them in src/devmapper/dmsetup.ts.
 *
 * @example
 * ```ts
 * import { DmControl } from "./dm_control.ts";
 * const ctl = DmControl.open(); // undefined without the ffi grant or a device-mapper driver
 * await ctl?.message("thinimage-pool", "create_thin 7");
 * ```
 * @module
 */
import {
  AT,
  type DeviceLibc,
  deviceLibc,
  LIBC_PATH,
  O,
  S_IFBLK,
  S_IFMT,
  SyscallError,
} from "../host/libc.ts";
import {
  DM_CMD,
  DM_CMD_NAME,
  DM_FLAG,
  type DmReply,
  type DmTarget,
  formatTargets,
  makedev,
  packHeader,
  packMessage,
  packTableLoad,
  parseMessageOutput,
  parseReply,
  parseTargets,
  REPLY_SIZES,
  requestCode,
} from "./dm_ioctl.ts";

const CONTROL = "/dev/mapper/control";

/** What strerror says for the errnos device-mapper answers with. */
const STRERROR: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  5: "Input/output error",
  6: "No such device or address",
  12: "Cannot allocate memory",
  13: "Permission denied",
  16: "Device or resource busy",
  17: "File exists",
  19: "No such device",
  22: "Invalid argument",
  28: "No space left on device",
  30: "Read-only file system",
  61: "No data available",
  95: "Operation not supported",
};

/** One device-mapper ioctl (or the node made after it) failed with `errno`. */
export class DmIoctlError extends Error {
  override name = "DmIoctlError";
  constructor(
    /** The command as libdevmapper names it: create, reload, resume, message, status... */
    readonly op: string,
    /** The device the command was about. */
    readonly device: string,
    readonly errno: number,
    /** What failed when it was not the ioctl itself (the node's mknod, say). */
    what?: string,
  ) {
    super(
      `device-mapper: ${what ?? `${op} ioctl on ${device}`} failed: ${
        STRERROR[errno] ?? `errno ${errno}`
      }`,
    );
  }
}

/** Whether this process may load libc through FFI (`--allow-ffi` naming it, or all). */
function mayUseFfi(): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi", path: LIBC_PATH }).state === "granted";
  } catch {
    return false;
  }
}

let shared: DmControl | null | undefined;

/** The device-mapper control device, open. */
export class DmControl {
  readonly #c: DeviceLibc;
  readonly #fd: number;

  private constructor(c: DeviceLibc, fd: number) {
    this.#c = c;
    this.#fd = fd;
  }

  /**
   * Open the control device, or undefined when this process cannot: no ffi grant (the
   * commands that revoke it use `dmsetup`), or no device-mapper driver (then `dmsetup` says
   * so in its own words, as before).
   */
  static open(): DmControl | undefined {
    // One descriptor for the process: the control device keeps no state between ioctls.
    if (shared === undefined || (shared !== null && !mayUseFfi())) {
      shared = DmControl.#open() ?? null;
    }
    return shared ?? undefined;
  }

  static #open(): DmControl | undefined {
    if (!mayUseFfi()) return undefined;
    try {
      const c = deviceLibc();
      const fd = c.open(CONTROL, O.RDWR);
      const ctl = new DmControl(c, fd);
      ctl.#call(DM_CMD.VERSION, packHeader({ name: "" }), "");
      return ctl;
    } catch (err) {
      if (err instanceof SyscallError || err instanceof DmIoctlError) return undefined;
      throw err;
    }
  }

  /** Send `buf` as `cmd` about `device`; the reply's header. */
  #call(cmd: number, buf: Uint8Array, device: string): DmReply {
    try {
      this.#c.ioctl(this.#fd, requestCode(cmd), buf);
    } catch (err) {
      if (err instanceof SyscallError) throw new DmIoctlError(DM_CMD_NAME[cmd], device, err.errno);
      throw err;
    }
    return parseReply(buf);
  }

  /**
   * A reply with data (a table, a status): asked with growing buffers while the kernel says
   * the last one was full, up to the biggest of {@linkcode REPLY_SIZES}.
   */
  #withData<T>(
    cmd: number,
    device: string,
    make: (size: number) => Uint8Array,
    read: (buf: Uint8Array, r: DmReply) => T,
  ): T {
    for (const size of REPLY_SIZES) {
      const buf = make(size);
      const reply = this.#call(cmd, buf, device);
      if (!(reply.flags & DM_FLAG.BUFFER_FULL)) return read(buf, reply);
    }
    throw new DmIoctlError(DM_CMD_NAME[cmd], device, 28, `${DM_CMD_NAME[cmd]} reply of ${device}`);
  }

  /** `name`'s header: device number, flags, open count; throws ENXIO when there is no such device. */
  info(name: string): DmReply {
    return this.#call(DM_CMD.DEV_STATUS, packHeader({ name }), name);
  }

  /** The live table (`table`) or status of `name`, one target a line as dmsetup prints it. */
  read(name: string, what: "table" | "status"): string {
    const flags = what === "table" ? DM_FLAG.STATUS_TABLE : 0;
    return this.#withData(
      DM_CMD.TABLE_STATUS,
      name,
      (size) => packHeader({ name, flags }, size),
      (buf, r) => formatTargets(parseTargets(buf, r)),
    );
  }

  /** Send target message `msg` to sector `sector` of `name`; its output, if any. */
  message(name: string, msg: string, sector = 0): string {
    return this.#withData(
      DM_CMD.TARGET_MSG,
      name,
      (size) => packMessage(name, msg, sector, size),
      parseMessageOutput,
    );
  }

  /**
   * Make `name` live with `targets` (as `dmsetup create --verifyudev`): create, load, resume;
   * a load or resume that fails removes the device again (the error thrown is the step's).
   * Then the node `/dev/mapper/NAME`, made when no udev made it. Returns `MAJOR:MINOR`.
   */
  async create(name: string, targets: DmTarget[], uuid?: string): Promise<string> {
    const made = this.#call(DM_CMD.DEV_CREATE, packHeader({ name, uuid }), name);
    try {
      this.#call(DM_CMD.TABLE_LOAD, packTableLoad(name, targets), name);
      this.#call(DM_CMD.DEV_SUSPEND, packHeader({ name }), name); // no DM_SUSPEND_FLAG: resume
    } catch (err) {
      await this.#removeHalfMade(name);
      throw err;
    }
    this.ensureNode(name, made.major, made.minor);
    return made.dev;
  }

  /**
   * Remove a device this object just created and could not finish. Retried briefly while
   * busy (a udev probing the new node holds it open for a moment), as libdevmapper does.
   */
  async #removeHalfMade(name: string): Promise<void> {
    for (let attempt = 0; attempt < 25; attempt++) {
      try {
        this.#call(DM_CMD.DEV_REMOVE, packHeader({ name }), name);
        return;
      } catch (err) {
        if (!(err instanceof DmIoctlError) || err.errno !== 16) return; // gone, or nothing to do
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    }
  }

  /** Remove `name` (DEV_REMOVE); its node is left to the caller. */
  remove(name: string): void {
    this.#call(DM_CMD.DEV_REMOVE, packHeader({ name }), name);
  }

  /**
   * Make `/dev/mapper/NAME` a block node for `major:minor` unless it is one already (made by
   * udev, perhaps as a symlink, or by a racing process): the node is made 0600 as dmsetup
   * makes it; a block node for another device is replaced, anything else is left and refused.
   */
  ensureNode(name: string, major: number, minor: number): void {
    const path = `/dev/mapper/${name}`;
    const want = `${major}:${minor}`;
    const fail = (errno: number, what: string) => new DmIoctlError("mknod", name, errno, what);
    const look = (): "right" | "missing" | "other-device" => {
      try {
        const st = this.#c.statat(AT.FDCWD, path);
        if ((st.mode & S_IFMT) !== S_IFBLK) throw fail(17, `${path} is not a block device: mknod`);
        return st.rdev === want ? "right" : "other-device";
      } catch (err) {
        if (err instanceof SyscallError && err.errno === 2) return "missing";
        if (err instanceof SyscallError) throw fail(err.errno, `stat ${path}`);
        throw err;
      }
    };
    const state = look();
    if (state === "right") return;
    try {
      if (state === "other-device") this.#c.unlinkat(AT.FDCWD, path, 0);
      this.#c.mknodat(AT.FDCWD, path, S_IFBLK | 0o600, makedev(major, minor));
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      // A udev (or another process) made it between the look and the mknod: fine if right.
      if (err.errno === 17 && look() === "right") return;
      throw fail(err.errno, `${err.syscall} ${path}`);
    }
  }
}
