/**
 * The Deno permissions thinimage runs with, in one place: the `thinimage` and `activate`
 * tasks of deno.json, the launcher `scripts/install.ts` writes, and `deno compile` all use
 * {@linkcode permissionFlags}, and a test checks deno.json against it.
 *
 * Why each one:
 * - read/write: the state directory (its database, blobs, locks and mount points), and the
 *   files a command is pointed at; path-scoped grants work for every command, as
 *   docs/permissions.md shows. Layers are not written through Deno's file ops at all: see ffi.
 * - ffi: libc only (src/host/libc.ts, the one module that calls it), for the commands that
 *   apply layers (apply, pull, activate); every other command revokes it. Writes into an image
 *   go through `openat2(RESOLVE_IN_ROOT)` and `*at` calls on directory descriptors, so the
 *   kernel keeps them inside the image. FFI is not sandboxed by Deno: it is granted for one
 *   library and held by as few commands as can do without it.
 * - net: the S3 endpoint's host only, and the daemon's socket in the state directory
 *   (`unix:STATE_DIR/daemon.sock`: `thinimage daemon` listens there, `activate` hands it work).
 * - run: the device tools, by absolute path (a doctored PATH cannot swap them).
 * - env: thinimage's own variables, the AWS SDK's, and the ones it reads at import.
 * - sys: the SDK reads the OS release (and the uid when HOME is unset); run owners are named
 *   by host name.
 *
 * @example
 * ```ts
 * import { permissionFlags } from "./permissions.ts";
 * permissionFlags({ netHosts: ["127.0.0.1:7480"] });
 * // ["--allow-read", "--allow-write", "--allow-net=127.0.0.1:7480", "--allow-run=/usr/sbin/dmsetup,...", ...]
 * ```
 * @module
 */
import { TOOLS } from "../devmapper/tools.ts";
import { LIBC_PATH } from "../host/libc.ts";
import { DEFAULT_STATE_DIR } from "../agent/defaults.ts";
import { socketPath } from "../daemon/protocol.ts";

/** Hosts of the public bucket's endpoint (path-style and virtual-hosted). */
export const PUBLIC_S3_HOSTS = [
  "s3.amazonaws.com",
  "s3.us-east-1.amazonaws.com",
  "flyio-platform-hiring-challenge.s3.amazonaws.com",
  "flyio-platform-hiring-challenge.s3.us-east-1.amazonaws.com",
] as const;

/** Environment variables read by thinimage and by the AWS SDK at import and request time. */
export const ENV_VARS = [
  "THINIMAGE_*",
  "AWS_*",
  "_X_AMZN_TRACE_ID",
  "HOME",
  "USERPROFILE",
  "HOMEPATH",
  "HOMEDRIVE",
  "DM_DISABLE_UDEV",
  "NO_COLOR",
] as const;

/** What {@linkcode permissionFlags} needs to know. */
export interface PermissionOptions {
  /** host or host:port of every S3 endpoint the launcher may reach. */
  netHosts: readonly string[];
  /** The state directory whose daemon socket it may reach (default: the default one). */
  stateDir?: string;
}

/**
 * Deno builds the module graph of every `import("./literal.ts")` it can see as soon as the
 * importing module loads: through the command registry, every start walked every command's
 * modules, the S3 SDK's and the tar applier's among them, whatever the command (a few
 * milliseconds on a host, a few tenths of a second under emulation). Lazily, a module is
 * loaded when imported; Deno then checks read permission on it, which the unscoped
 * `--allow-read` below grants (narrower grants, without this flag, load as before).
 */
export const LAZY_IMPORTS_FLAG = "--unstable-lazy-dynamic-imports";

/**
 * V8 without its top tier (TurboFan): every thinimage process is short-lived or mostly idle,
 * and TurboFan's compiles (on V8's own threads, beside the applier's two busy ones) cost more
 * CPU than its code saved: applying the /usr trees layer of bench/tar.ts, 0.13-0.16 CPU-s of
 * compiling (220 jobs, functions recompiled after deoptimizations), while the main thread's own
 * time did not grow with Maglev's code alone. Maglev stays: without it (`--max-opt=1`) the
 * same layer's parsing took 7x as long.
 */
export const V8_FLAGS = "--v8-flags=--max-opt=2";

/** The flags thinimage runs with besides its grants: lazy imports and {@linkcode V8_FLAGS}. */
export const RUNTIME_FLAGS = [LAZY_IMPORTS_FLAG, V8_FLAGS] as const;

/**
 * The flags for running thinimage with `opts`: the `--allow-*` grants and
 * {@linkcode RUNTIME_FLAGS}.
 */
export function permissionFlags(opts: PermissionOptions): string[] {
  for (const v of [...opts.netHosts, opts.stateDir ?? ""]) {
    if (v.includes(",") || /\s/.test(v)) throw new TypeError(`cannot be a permission value: ${v}`);
  }
  return [
    ...RUNTIME_FLAGS,
    "--allow-read",
    "--allow-write",
    `--allow-net=${
      [...opts.netHosts, `unix:${socketPath(opts.stateDir ?? DEFAULT_STATE_DIR)}`].join(",")
    }`,
    `--allow-run=${Object.values(TOOLS).join(",")}`,
    `--allow-env=${ENV_VARS.join(",")}`,
    "--allow-sys=osRelease,hostname,uid",
    `--allow-ffi=${LIBC_PATH}`,
  ];
}

/** The flags of the deno.json tasks: the public bucket's hosts, nothing else on the network. */
export function taskPermissionFlags(): string[] {
  return permissionFlags({ netHosts: PUBLIC_S3_HOSTS });
}
