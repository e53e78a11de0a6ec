/**
 * A typed wrapper over `dmsetup` (argv only), turning its stderr into typed errors once, here,
 * so that callers branch on classes and never on message text.
 *
 * Without udev (containers, the test VM) `dmsetup create` makes no `/dev/mapper/NAME` node, and
 * a thin table naming a missing pool node fails with ENODEV; create, remove and resume pass
 * `--verifyudev`, which makes and removes the node when udev does not, so the same code runs
 * with and without udev (and without `DM_DISABLE_UDEV` in the environment).
 *
 * In a process that holds the ffi grant (activate, pull), the operations of an activation
 * (create, message, table, status, the device number, the node) go to the kernel directly,
 * as ioctls on `/dev/mapper/control` (src/devmapper/dm_control.ts): no process each. Their
 * failures become the same typed errors, with the same messages (the argv they stand for and
 * what dmsetup would have printed). Removal, suspend, resume and the listings stay `dmsetup`.
 *
 * @example
 * ```ts
 * import { Dmsetup, DmExistsError } from "./dmsetup.ts";
 * const dm = new Dmsetup();
 * try {
 *   await dm.createThin("thinimage-pool", 7);
 * } catch (err) {
 *   if (!(err instanceof DmExistsError)) throw err; // id 7 is taken: pick another
 * }
 * ```
 * @module
 */
import { ExitCode, ThinimageError } from "../errors.ts";
import { type RetryPolicy, withRetries } from "../retry.ts";
import {
  classifyDmStderr,
  formatThinPoolTable,
  formatThinTable,
  parseDmsetupLs,
  parseDmsetupTables,
  parseSuspendedNames,
  parseVerboseDm,
  type ThinPoolTable,
  type ThinTable,
} from "./parse.ts";
import { runTool, type ToolOutput, TOOLS } from "./tools.ts";
import { DmControl, DmIoctlError } from "./dm_control.ts";
import { parseTableText } from "./dm_ioctl.ts";

/** dmsetup failed; carries the argv and stderr so the message says what was tried. */
export class DmError extends ThinimageError {
  /** The full argv that failed. */
  readonly argv: string[];
  /** dmsetup's stderr, trimmed. */
  readonly stderr: string;

  constructor(out: Pick<ToolOutput, "argv" | "stderr" | "code">) {
    const stderr = out.stderr.replace(/\nCommand failed\.?\s*$/, "").trim();
    super(`${out.argv.slice(1).join(" ")}: ${stderr || `exit status ${out.code}`}`, {
      details: { argv: out.argv, stderr, status: out.code },
    });
    this.argv = out.argv;
    this.stderr = stderr;
  }
}
/** The name (create) or thin id (create_thin, create_snap) is already taken. */
export class DmExistsError extends DmError {}
/** No device of that name, or the pool device is gone. */
export class DmNoSuchDeviceError extends DmError {}
/**
 * The device is open (mounted, held by a process, or the origin of an active table). Retried:
 * a few times within the call ({@linkcode BusyRetry}), then, when it escapes a transition, by
 * the engine with backoff (it is not `permanent`); a run that gives up ends with exit 75.
 */
export class DmBusyError extends DmError {
  override readonly exitCode = ExitCode.TempFail;
}
/** The thin id does not exist in the pool ("No data available"). */
export class DmNoDataError extends DmError {}
/** This kernel has no device-mapper driver (no /dev/mapper/control). */
export class DmUnavailableError extends DmError {
  constructor(out: Pick<ToolOutput, "argv" | "stderr" | "code">) {
    super(out);
    this.message = `this kernel has no device-mapper (${
      this.stderr.split("\n")[0]
    }); run where dm-thin-pool is available, e.g. scripts/vm.sh`;
  }
}

/** Build the typed error for a failed dmsetup run. Exported for the parser's host tests. */
export function dmErrorFrom(out: Pick<ToolOutput, "argv" | "stderr" | "code">): DmError {
  switch (classifyDmStderr(out.stderr)) {
    case "no-driver":
      return new DmUnavailableError(out);
    case "exists":
      return new DmExistsError(out);
    case "no-such-device":
      return new DmNoSuchDeviceError(out);
    case "busy":
      return new DmBusyError(out);
    case "no-data":
      return new DmNoDataError(out);
    default:
      return new DmError(out);
  }
}

/**
 * The typed error for a failed ioctl standing for `dmsetup ARGS`, by errno as
 * {@linkcode dmErrorFrom} classifies dmsetup's words for the same errno.
 */
export function dmErrorFromIoctl(args: string[], err: DmIoctlError): DmError {
  const out = { argv: [TOOLS.dmsetup, ...args], stderr: err.message, code: 1 };
  if (err.op === "mknod") return new DmError(out); // the node, not the device, is wrong
  switch (err.errno) {
    case 17: // EEXIST
      return new DmExistsError(out);
    case 16: // EBUSY: the kernel's answer to creating a name that is taken
      return err.op === "create" ? new DmExistsError(out) : new DmBusyError(out);
    case 6: // ENXIO
    case 19: // ENODEV
      return new DmNoSuchDeviceError(out);
    case 61: // ENODATA
      return new DmNoDataError(out);
    default:
      return new DmError(out);
  }
}

/** Retry policy for operations that meet an open device. */
export interface BusyRetry {
  /** Attempts in all (default 10). */
  attempts?: number;
  /** Delay before the second attempt, doubled each time up to 1 s (default 50 ms). */
  delayMs?: number;
}

/** How a {@linkcode Dmsetup} reaches device-mapper. */
export interface DmsetupOptions extends BusyRetry {
  /**
   * auto (default): ioctls when this process holds the ffi grant and the kernel has
   * device-mapper, else `dmsetup`; dmsetup: always the program (for stand-ins that answer
   * for it by overriding {@linkcode Dmsetup.run}).
   */
  backend?: "auto" | "dmsetup";
}

/** dmsetup commands that only read: every other one drops the answers read ahead. */
const READS = new Set(["table", "status", "info", "ls", "version"]);

/** `dmsetup`, one method per operation this project uses. */
export class Dmsetup {
  readonly #retry: RetryPolicy;
  /** Answers started by {@linkcode Dmsetup.readAhead}, by `what name`, each served once. */
  readonly #ahead = new Map<string, Promise<string | undefined>>();

  readonly #backend: "auto" | "dmsetup";
  /** The control device, once opened (null: not usable here, `dmsetup` it is). */
  #ctl: DmControl | null | undefined;

  constructor(retry: DmsetupOptions = {}) {
    this.#backend = retry.backend ?? "auto";
    this.#retry = {
      maxAttempts: retry.attempts ?? 10,
      maxElapsedMs: Infinity,
      initialDelayMs: retry.delayMs ?? 50,
      maxDelayMs: 1000,
      factor: 2,
      jitter: 0,
    };
  }

  /** Run `dmsetup ARGS`, returning stdout or throwing a typed {@linkcode DmError}. */
  async run(args: string[]): Promise<string> {
    const out = await runTool(TOOLS.dmsetup, args);
    if (out.code !== 0) throw dmErrorFrom(out);
    return out.stdout;
  }

  /** The control device when this object talks to the kernel directly. */
  #control(): DmControl | undefined {
    if (this.#ctl === undefined) {
      this.#ctl = (this.#backend === "auto" ? DmControl.open() : undefined) ?? null;
    }
    return this.#ctl ?? undefined;
  }

  /** Whether the device operations go through ioctls (else through `dmsetup`). */
  get usesIoctl(): boolean {
    return this.#control() !== undefined;
  }

  /** Run `op` on the control device, its failure typed as `dmsetup ARGS` would have been. */
  async #ioctl<T>(ctl: DmControl, args: string[], op: (ctl: DmControl) => T): Promise<T> {
    try {
      return await op(ctl);
    } catch (err) {
      if (err instanceof DmIoctlError) throw dmErrorFromIoctl(args, err);
      throw err;
    }
  }

  /** {@linkcode Dmsetup.run}, for every method here. */
  #call(args: string[]): Promise<string> {
    // What this object is about to change makes what it read ahead stale.
    if (!READS.has(args[0])) this.#ahead.clear();
    return this.run(args);
  }

  /**
   * Create and activate `name` with a one-line `table`. `--verifyudev` makes (and on
   * {@linkcode Dmsetup.remove} removes) `/dev/mapper/NAME` itself when no udev does.
   */
  async create(name: string, table: string): Promise<void> {
    const args = ["create", "--verifyudev", name, "--table", table];
    const ctl = this.#control();
    if (!ctl) return void await this.#call(args);
    const targets = parseTableText(table);
    await this.#ioctl(ctl, args, (c) => c.create(name, targets));
  }

  /**
   * Make `/dev/mapper/NAME` when no udev made it (a no-op when the node is right). Always run:
   * checking for the node first would need --allow-all, which Deno demands for /dev/mapper.
   */
  async ensureNode(name: string): Promise<void> {
    // For devices made elsewhere, perhaps without udev and without --verifyudev.
    const args = ["mknodes", name];
    const ctl = this.#control();
    const info = ctl && await this.#readIoctl(ctl, args, (c) => c.info(name));
    // No such device: dmsetup's mknodes tidies a stale node away, which is its business.
    if (!ctl || !info) return void await this.#call(args);
    await this.#ioctl(ctl, args, (c) => c.ensureNode(name, info.major, info.minor));
  }

  /** {@linkcode Dmsetup.#ioctl} for a read: undefined when there is no such device. */
  async #readIoctl<T>(
    ctl: DmControl,
    args: string[],
    op: (ctl: DmControl) => T,
  ): Promise<T | undefined> {
    try {
      return await this.#ioctl(ctl, args, op);
    } catch (err) {
      if (err instanceof DmNoSuchDeviceError) return undefined;
      throw err;
    }
  }

  /**
   * Start reading `name`'s table, status and device number now, in two processes at once (the
   * status with `-v`, which prints the device number above it: each process start costs a
   * tenth of a second or more under emulation), so that they run while the caller does other
   * work (loads modules, under emulation seconds of it). The next {@linkcode Dmsetup.table},
   * {@linkcode Dmsetup.status} and {@linkcode Dmsetup.deviceNumber} of `name` take these
   * answers, each once; anything this object changes first drops them. A name already read
   * ahead is not read again.
   */
  readAhead(name: string): void {
    // An ioctl costs less than keeping its answer: with them, every read is made when asked.
    if (this.#ahead.has(`table ${name}`) || this.#control()) return;
    const keep = (key: string, answer: Promise<string | undefined>) => {
      answer.catch(() => {}); // taken (and thrown) later, or never
      this.#ahead.set(`${key} ${name}`, answer);
    };
    keep("table", this.#table(name));
    const verbose = this.#verboseStatus(name);
    // What the answer lacks (no such device, or output not understood) is read on its own.
    keep("status", verbose.then((v) => v && (v.lines || this.#status(name))));
    const own = () => this.#deviceNumber(name);
    keep("info", verbose.then((v) => v?.dev ?? own(), own));
  }

  async #verboseStatus(name: string): Promise<{ lines: string; dev?: string } | undefined> {
    const out = await this.#readLive(["status", "-v", name]);
    return out === undefined ? undefined : parseVerboseDm(out);
  }

  /** What the read `args` prints, or undefined when the device it names does not exist. */
  async #readLive(args: string[]): Promise<string | undefined> {
    try {
      return await this.#call(args);
    } catch (err) {
      if (err instanceof DmNoSuchDeviceError) return undefined;
      throw err;
    }
  }

  /** The answer read ahead for `key`, once. */
  #take(key: string): Promise<string | undefined> | undefined {
    const answer = this.#ahead.get(key);
    this.#ahead.delete(key);
    return answer;
  }

  /** `MAJOR:MINOR` of the live device `name`. */
  async deviceNumber(name: string): Promise<string> {
    return (await (this.#take(`info ${name}`) ?? this.#deviceNumber(name)))!;
  }

  async #deviceNumber(name: string): Promise<string> {
    const ctl = this.#control();
    if (ctl) return (await this.#ioctl(ctl, ["info", name], (c) => c.info(name))).dev;
    const out = await this.#columns("major,minor", name);
    const m = /^\s*(\d+):(\d+)\s*$/.exec(out);
    if (!m) {
      throw new DmError({ argv: ["dmsetup", "info", name], stderr: `unreadable: ${out}`, code: 0 });
    }
    return `${m[1]}:${m[2]}`;
  }

  /** Deactivate `name`, retrying while it is busy; throws {@linkcode DmBusyError} at the end. */
  async remove(name: string): Promise<void> {
    await this.#whileBusy(() => this.#call(["remove", "--verifyudev", name]));
  }

  /** Suspend `name` (flushing and freezing a mounted filesystem), retrying while busy. */
  async suspend(name: string): Promise<void> {
    await this.#whileBusy(() => this.#call(["suspend", name]));
  }

  /** Resume a suspended `name`. */
  async resume(name: string): Promise<void> {
    await this.#whileBusy(() => this.#call(["resume", "--verifyudev", name]));
  }

  /** Send a target message (sector 0), such as `create_thin 7`, to the pool `pool`. */
  async message(pool: string, msg: string): Promise<void> {
    const args = ["message", pool, "0", msg];
    const ctl = this.#control();
    if (!ctl) return void await this.#call(args);
    await this.#ioctl(ctl, args, (c) => c.message(pool, msg));
  }

  /**
   * Make the empty thin device `thinId` in `pool`. The pool's messages (`create_thin`,
   * `create_snap`, `delete`) are those of
   * https://docs.kernel.org/admin-guide/device-mapper/thin-provisioning.html.
   */
  async createThin(pool: string, thinId: number): Promise<void> {
    await this.message(pool, `create_thin ${thinId}`);
  }

  /** Make `thinId` a snapshot of `originId` in `pool`; a live origin must be suspended. */
  async createSnap(pool: string, thinId: number, originId: number): Promise<void> {
    await this.message(pool, `create_snap ${thinId} ${originId}`);
  }

  /** Delete the thin device `thinId` from `pool` (its blocks go back to the pool). */
  async deleteThin(pool: string, thinId: number): Promise<void> {
    await this.message(pool, `delete ${thinId}`);
  }

  /** Make `name` live as thin device `t.thinId` of the pool device `t.poolDev`. */
  async createThinDevice(name: string, t: ThinTable): Promise<void> {
    await this.create(name, formatThinTable(t));
  }

  /** Make the thin pool `name` live with table `t`. */
  async createPool(name: string, t: ThinPoolTable): Promise<void> {
    await this.create(name, formatThinPoolTable(t));
  }

  /**
   * Take the pool's metadata snapshot, through which its thin ids can be read while it is
   * live. Only one may be held: a second is DmBusyError.
   */
  async reserveMetadataSnap(pool: string): Promise<void> {
    await this.message(pool, "reserve_metadata_snap");
  }

  /** Let go of the pool's metadata snapshot. */
  async releaseMetadataSnap(pool: string): Promise<void> {
    await this.message(pool, "release_metadata_snap");
  }

  /** The live table of `name` (one line per target), or undefined when there is no such device. */
  table(name: string): Promise<string | undefined> {
    return this.#take(`table ${name}`) ?? this.#table(name);
  }

  async #table(name: string): Promise<string | undefined> {
    const ctl = this.#control();
    if (ctl) return await this.#readIoctl(ctl, ["table", name], (c) => c.read(name, "table"));
    return (await this.#readLive(["table", name]))?.trim();
  }

  /** The status line of `name`, or undefined when there is no such device. */
  status(name: string): Promise<string | undefined> {
    return this.#take(`status ${name}`) ?? this.#status(name);
  }

  async #status(name: string): Promise<string | undefined> {
    const ctl = this.#control();
    if (ctl) return await this.#readIoctl(ctl, ["status", name], (c) => c.read(name, "status"));
    return (await this.#readLive(["status", name]))?.trim();
  }

  /** The live table of every device-mapper device on the host, in one run. */
  async tables(): Promise<Map<string, string>> {
    return parseDmsetupTables(await this.#call(["table"]));
  }

  /** The names of every suspended device-mapper device on the host, in one run. */
  async suspendedNames(): Promise<string[]> {
    const out = await this.#columns("name,suspended");
    return parseSuspendedNames(out);
  }

  /** Every device-mapper device on the host, with its `MAJOR:MINOR`. */
  async ls(): Promise<{ name: string; dev: string }[]> {
    return parseDmsetupLs(await this.#call(["ls"]));
  }

  /** `dmsetup info` as `:`-separated columns `fields`, for `name` or every device. */
  #columns(fields: string, name?: string): Promise<string> {
    const args = ["info", "-c", "--noheadings", "--separator", ":", "-o", fields];
    return this.#call(name === undefined ? args : [...args, name]);
  }

  async #whileBusy(op: () => Promise<unknown>): Promise<void> {
    await withRetries(op, {
      policy: this.#retry,
      isRetryable: (err) => err instanceof DmBusyError,
    });
  }
}
