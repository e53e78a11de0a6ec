/**
 * Wires one process's agent: the store, the catalogue, the blob store, the engine with its
 * owner lock, the pool, and the image machines over the real effects. The commands `pull`,
 * `activate`, `deactivate`, `ls`, `rm` and `gc` open one, use it, and close it.
 *
 * @example
 * ```ts
 * import { openAgent } from "./runtime.ts";
 * // const agent = await openAgent({ stateDir, log, signal, source: {}, offline: false });
 * // const run = await agent.engine.start(agent.machines.activate, "web", { image: "golang", name: "web" });
 * // agent.close();
 * ```
 * @module
 */
import type { Store } from "../store/db.ts";
import { StateDir } from "../state_dir.ts";
import { Catalog } from "../store/catalog.ts";
import { SqliteRunStore } from "../store/runs.ts";
import { BlobStore } from "../blobs/store.ts";
import { Engine } from "../engine/engine.ts";
import type { NewEvent } from "../engine/types.ts";
import { agentEffects } from "./effects.ts";
import { DEFAULT_DEVICE_SIZE } from "./defaults.ts";
import { activateMachine, deactivateMachine } from "../machines/activate.ts";
import { blobMachine, chainMachine, pullMachine } from "../machines/pull.ts";
import type { SourceConfig } from "../retrieve/source.ts";
import type { Logger } from "../log.ts";
import type { ThinPool } from "../devmapper/thin.ts";
import { Dmsetup } from "../devmapper/dmsetup.ts";
import { choosePool, readPoolAhead } from "../devmapper/records.ts";

/** What {@linkcode openAgent} needs. */
export interface AgentOptions {
  stateDir: string;
  log: Logger;
  source: SourceConfig;
  offline?: boolean;
  noWait?: boolean;
  /** Pool name (`--pool`); default: the one recorded in the state directory. */
  pool?: string;
  /** Virtual size of chain devices (default 8 GiB). */
  deviceSizeBytes?: number;
  /** The device tool, perhaps already reading the pool ahead (see `readPoolAhead`). */
  dm?: Dmsetup;
  /**
   * The state directory's store, already open (the agent closes it): each open and close of a
   * WAL database creates, checkpoints and removes its -wal and -shm files.
   */
  store?: Store;
}

/** An open agent. */
export interface Agent {
  store: Store;
  catalog: Catalog;
  blobs: BlobStore;
  engine: Engine;
  effects: ReturnType<typeof agentEffects>;
  machines: {
    pull: ReturnType<typeof pullMachine>;
    blob: ReturnType<typeof blobMachine>;
    chain: ReturnType<typeof chainMachine>;
    activate: ReturnType<typeof activateMachine>;
    deactivate: ReturnType<typeof deactivateMachine>;
  };
  /** The pool, opened (and reconciled when intents were left in flight) on first use. */
  pool(): Promise<ThinPool>;
  /**
   * Fail now if the pool cannot serve: not recorded in this state directory (SQLite only),
   * not live, or unhealthy. Commands call it before their first S3 request.
   */
  checkPool(): Promise<void>;
  close(): void;
}

/** Open the agent of `stateDir` (created if missing). */
export async function openAgent(o: AgentOptions): Promise<Agent> {
  const dir = new StateDir(o.stateDir);
  if (!o.store) await dir.ensure();
  const store = o.store ?? dir.openStore();
  const catalog = new Catalog(store);
  const blobs = new BlobStore(o.stateDir, store);
  const me = dir.processOwner();
  const machineOf = (runId: string) => engine.store.get(runId)?.machine;
  const crash = crashHooks(machineOf);
  const engine: Engine = new Engine(new SqliteRunStore(store), {
    owner: me.owner,
    liveness: me.liveness,
    log: {
      debug: (msg, f) => o.log.debug(msg, f),
      info: (msg, f) => o.log.debug(msg, f),
      warn: (msg, f) => o.log.warn(msg, f),
      error: (msg, f) => o.log.error(msg, f),
    },
    onEvent: crash.onEvent,
  });
  let pool: Promise<ThinPool> | undefined;
  const dm = o.dm ?? new Dmsetup();
  const openPool = (): Promise<ThinPool> =>
    pool ??= (async () => {
      const name = choosePool(store, o.pool);
      readPoolAhead(store, name, dm); // while the device modules load
      const { ensurePool } = await import("../devmapper/pool.ts");
      const { ThinPool } = await import("../devmapper/thin.ts");
      const info = await ensurePool(dir.pool, store, name, dm);
      const tp = new ThinPool(store, info, { owners: me, locksDir: dir.locks }, dm);
      if (tp.list().some((d) => d.state === "creating" || d.state === "removing")) {
        const report = await tp.reconcile();
        for (const f of report.findings) {
          o.log.warn(`reconciled ${f.device ?? `thin id ${f.thinId}`}: ${f.problem}`, {
            action: f.action,
          });
        }
      }
      return tp;
    })();
  const effects = agentEffects({
    stateDir: dir,
    catalog,
    blobs,
    engine,
    log: o.log,
    pool: openPool,
    source: o.source,
    offline: o.offline ?? false,
    noWait: o.noWait ?? false,
    deviceSizeBytes: o.deviceSizeBytes ?? DEFAULT_DEVICE_SIZE,
    onProgress: crash.onProgress,
  });
  const blob = blobMachine(effects);
  const chain = chainMachine(effects);
  const pull = pullMachine(effects, blob, chain);
  const machines = {
    pull,
    blob,
    chain,
    activate: activateMachine(effects, pull),
    deactivate: deactivateMachine(effects),
  };
  for (const m of Object.values(machines)) engine.register(m);
  return {
    store,
    catalog,
    blobs,
    engine,
    effects,
    machines,
    pool: openPool,
    async checkPool() {
      await (await openPool()).health();
    },
    close() {
      effects.close();
      store.close();
    },
  };
}

/**
 * Crash points for the crash-safety tests, off unless their variables are set. A real SIGKILL,
 * so nothing gets to clean up.
 *
 * - `THINIMAGE_TEST_CRASH_LEDGER=FILE`: right after a transition's completion is durably
 *   recorded (a transition boundary), die if that kind of boundary (`machine.state`) appears
 *   in FILE fewer than `THINIMAGE_TEST_CRASH_PER_KIND` times (default 1), noting it in FILE
 *   first. Rerunning until a run succeeds thus dies once at each kind of boundary.
 * - `THINIMAGE_TEST_CRASH_IN=download:BYTES` or `apply:BYTES`: die once that step passes BYTES.
 */
function crashHooks(machineOf: (runId: string) => string | undefined): {
  onEvent?: (runId: string, e: NewEvent) => void;
  onProgress?: (step: "download" | "apply", done: number, total: number) => void;
} {
  const env = (k: string) => {
    try {
      return Deno.env.get(k);
    } catch {
      return undefined;
    }
  };
  const ledger = env("THINIMAGE_TEST_CRASH_LEDGER");
  const perKind = Number(env("THINIMAGE_TEST_CRASH_PER_KIND") ?? "1");
  const inStep = /^(download|apply):(\d+)$/.exec(env("THINIMAGE_TEST_CRASH_IN") ?? "");
  const die = (why: string) => {
    console.error(`crash point: ${why}`);
    Deno.kill(Deno.pid, "SIGKILL");
  };
  return {
    onEvent: ledger
      ? (runId, e) => {
        if (e.kind !== "complete") return;
        const kind = `${machineOf(runId)}.${e.state}`;
        let seen: string[] = [];
        try {
          seen = Deno.readTextFileSync(ledger).split("\n");
        } catch { /* first crash */ }
        if (seen.filter((k) => k === kind).length >= perKind) return;
        Deno.writeTextFileSync(ledger, kind + "\n", { append: true });
        die(`after ${kind}`);
      }
      : undefined,
    onProgress: inStep
      ? (step, done) => {
        if (step === inStep[1] && done >= Number(inStep[2])) die(`${step} at ${done} bytes`);
      }
      : undefined,
  };
}
