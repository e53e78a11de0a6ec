/**
 * Options shared by the commands that drive the image machines (`pull`, `activate`,
 * `deactivate`, `rm`, `gc`), and how they open an agent.
 * @module
 */
import type { OptionsConfig } from "./args.ts";
import type { CommandArgs, CommandContext } from "./command.ts";
import { S3_HELP, S3_OPTIONS, S3_USAGE, sourceConfigFromArgs } from "./s3_options.ts";
import type { Agent, AgentOptions } from "../agent/runtime.ts";
import { DEFAULT_DEVICE_SIZE } from "../agent/defaults.ts";
import { parseSize } from "../devmapper/parse.ts";
import { formatBytes } from "../log.ts";
import { MissingPermissionError, UsageError } from "../errors.ts";
import { checkName } from "../names.ts";

/** `--offline`, `--no-wait`, `--pool`, `--device-size` and the S3 options. */
export const AGENT_OPTIONS = {
  ...S3_OPTIONS,
  offline: { type: "boolean" },
  "no-wait": { type: "boolean" },
  pool: { type: "string" },
  "device-size": { type: "string" },
} as const satisfies OptionsConfig;

/** The usage fragment of {@linkcode AGENT_OPTIONS}. */
export const AGENT_USAGE = `[--offline] [--no-wait] [--pool NAME] [--device-size SIZE] ${S3_USAGE}`;

/** Help lines of {@linkcode AGENT_OPTIONS}. */
export const AGENT_HELP = [
  "  --offline           never touch the network: use what is stored locally",
  "  --no-wait           exit 75 instead of waiting when another process is doing the same work",
  "  --pool NAME         the thin pool (default: the one 'pool init' recorded)",
  `  --device-size SIZE  virtual size of new chain devices (default ${
    formatBytes(DEFAULT_DEVICE_SIZE)
  })`,
  S3_HELP,
].join("\n");

/** Open the agent the parsed flags describe. */
export async function agentFromArgs(
  ctx: CommandContext,
  values: CommandArgs["values"],
  extra: Pick<AgentOptions, "dm" | "store"> = {},
): Promise<Agent> {
  let deviceSizeBytes: number | undefined;
  if (values["device-size"] !== undefined) {
    try {
      deviceSizeBytes = parseSize(String(values["device-size"]), "--device-size");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  // Loaded on demand: the engine, the machines and their effects are most of a start's
  // modules, and activating an existing activation needs none of them.
  const { openAgent } = await import("../agent/runtime.ts");
  return await openAgent({
    stateDir: ctx.stateDir,
    log: ctx.log,
    source: sourceConfigFromArgs(values),
    offline: Boolean(values.offline),
    noWait: Boolean(values["no-wait"]),
    pool: values.pool === undefined
      ? undefined
      : checkName("pool", values.pool as string, "--pool"),
    deviceSizeBytes,
    ...extra,
  });
}

/**
 * What can be checked here before the network, checked: a configured endpoint is an http(s)
 * URL this process may reach (the pool, the names and the state directory are checked by the
 * caller and by opening the agent). Cheap: no process, no request.
 */
export function checkNetPermission(values: CommandArgs["values"]): void {
  const endpoint = sourceConfigFromArgs(values).endpoint;
  if (endpoint === undefined) return; // AWS: its host depends on the SDK's resolution
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch { /* below */ }
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    throw new UsageError(`invalid endpoint ${JSON.stringify(endpoint)}: an http(s) URL`);
  }
  const host = url.host;
  if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
    throw new MissingPermissionError(`--allow-net=${host}`);
  }
}

/**
 * Start loading the S3 client while local checks run (the SDK takes seconds to load under
 * emulation, a device-tool process a fraction of one). Loading sends no request.
 */
export function preloadS3Client(): void {
  import("../retrieve/source.ts").catch(() => {});
}

/**
 * Start loading the device layer (the pool and its thin devices) beside the agent's modules,
 * which the agent would load only once it is open: a new activation needs both, and module
 * loads in flight together overlap their file and cache reads.
 */
export function preloadDeviceModules(): void {
  import("../devmapper/pool.ts").catch(() => {});
  import("../devmapper/thin.ts").catch(() => {});
}

/** Run `fn` on an open agent and close it afterwards. */
export async function withAgent<T>(
  ctx: CommandContext,
  values: CommandArgs["values"],
  fn: (agent: Agent) => Promise<T>,
  extra: Pick<AgentOptions, "dm" | "store"> = {},
): Promise<T> {
  const agent = await agentFromArgs(ctx, values, extra);
  try {
    return await fn(agent);
  } finally {
    agent.close();
  }
}
