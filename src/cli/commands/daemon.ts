/**
 * `thinimage daemon`: one long-running process per state directory, with the CLI, the agent and
 * SQLite loaded once, to which `activate` hands warm activations (an image pulled here: no
 * listing), so that starting a VM costs little more than starting Deno. Anything else, and any
 * activation that would pull, the client runs itself, as it does with no daemon.
 * @module
 */
import type { Command } from "../command.ts";
import { TemporaryError } from "../../errors.ts";

const daemon: Command = {
  name: "daemon",
  summary: "serve warm activations of this state directory from one long-running process",
  usage: "thinimage daemon\n" +
    "  Listens on STATE_DIR/daemon.sock (mode 0600) until SIGINT or SIGTERM (exit 75, as any\n" +
    "  command stopped by a signal). 'thinimage activate' then hands it activations of images\n" +
    "  pulled here; pulls and every other command run in their own process. The socket must\n" +
    "  be granted to both: --allow-net=unix:STATE_DIR/daemon.sock (the launcher grants the\n" +
    "  default state directory's).",
  options: {},
  keeps: ["read", "write", "net", "env", "run", "sys", "ffi"],
  async run(ctx) {
    const [{ runCli }, { serveDaemon }, { Dmsetup }] = await Promise.all([
      import("../frame.ts"),
      import("../../daemon/server.ts"),
      import("../../devmapper/dmsetup.ts"),
      // What a warm activation loads, loaded before the first client rather than by it.
      import("./activate.ts"),
      import("../../agent/runtime.ts"),
      import("../../devmapper/pool.ts"),
      import("../../devmapper/thin.ts"),
    ]);
    // Bind libc's device calls and open the control device (once a process) now, rather
    // than in the first client's time.
    void new Dmsetup().usesIoctl;
    await serveDaemon({
      stateDir: ctx.stateDir,
      signal: ctx.signal,
      log: ctx.log,
      run: (argv, io) =>
        runCli(argv, {
          stdout: io.stdout,
          stderr: io.stderr,
          signal: io.signal,
          noRevoke: true,
          noSignals: true,
          daemon: { stateDir: ctx.stateDir, envStateDir: io.envStateDir },
        }),
    });
    throw new TemporaryError("the daemon stopped: start it again to serve activations");
  },
};
export default daemon;
