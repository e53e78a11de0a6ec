/**
 * "After parsing, each subcommand revokes what it does not use" (docs/permissions.md), through
 * real processes started with the task's flags (src/cli/permissions.ts): each command runs in
 * the real frame, then the process tries to connect to a listening socket, start a device tool,
 * read, write, read the environment and the host name, and reports what still works.
 */
import { assertEquals } from "../helpers/assert.ts";
import { permissionFlags } from "../../src/cli/permissions.ts";
import { TOOLS } from "../../src/devmapper/tools.ts";
import { COMMANDS } from "../../src/cli/registry.ts";
import type { PermissionName } from "../../src/cli/command.ts";
import { Tar } from "../tar/tar_builder.ts";

const PROBE = new URL("./fixtures/probe.ts", import.meta.url).pathname;
const ALL: PermissionName[] = ["read", "write", "net", "env", "run", "sys", "ffi"];
/** A closed port: commands that reach S3 fail fast there, after revoking. */
const DEAD = "127.0.0.1:9";

/** Arguments that parse for each command (the command may then fail: revocation came first). */
function argsFor(name: string, dir: string, layer: string): string[] {
  const s3 = ["--endpoint", `http://${DEAD}`, "--bucket", "thinimage-probe"];
  switch (name) {
    case "validate":
      return [layer];
    case "apply":
      return [layer, `${dir}/target`];
    case "fetch":
      return ["golang", ...s3];
    case "images":
      return ["--remote", ...s3];
    case "pull":
    case "activate":
      return ["golang", "--offline"];
    case "deactivate":
    case "rm":
      return ["nothing"];
    case "gc":
      return ["--dry-run"];
    case "pool":
      return ["status"];
    default:
      return [];
  }
}

/** What docs/permissions.md promises in so many words; every other command: its `keeps`. */
const README_KEEPS: Record<string, PermissionName[]> = {
  ls: ["read", "write", "env"],
  history: ["read", "write", "env"],
  validate: ["read", "env"],
  activate: ALL,
};

Deno.test("each command, run by a process with the task's flags, can no longer use what it dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-revoke-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const c of listener) c.close();
  })();
  try {
    await Deno.mkdir(`${dir}/target`);
    const layer = new Tar().file("etc/hosts", "127.0.0.1 localhost\n").end().write(dir);
    const netHost = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    const flags = permissionFlags({ netHosts: [netHost, DEAD] });
    const failures: string[] = [];
    for (const name of Object.keys(COMMANDS)) {
      const state = `${dir}/state-${name}`;
      await Deno.mkdir(state);
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-check",
          ...flags,
          PROBE,
          netHost,
          TOOLS.sync,
          layer,
          state,
          "--",
          "--state-dir",
          state,
          name,
          ...argsFor(name, dir, layer),
        ],
        env: { THINIMAGE_BUCKET: "thinimage-probe", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const line = /^PROBE (.*)$/m.exec(text)?.[1];
      if (!line) {
        failures.push(`${name}: no probe (${new TextDecoder().decode(out.stderr)})`);
        continue;
      }
      const got = JSON.parse(line);
      const keeps = (await COMMANDS[name]()).default.keeps;
      const want = README_KEEPS[name] ?? keeps;
      for (const p of ALL) {
        // Kept and granted by the task's flags (ffi only once permissions.ts grants it).
        const granted = flags.some((f) => f.startsWith(`--allow-${p}`));
        const expected = want.includes(p) && granted ? "granted" : "revoked";
        if (got[p] !== expected) {
          failures.push(`${name} (exit ${got.code}): ${p} ${got[p]}, expected ${expected}`);
        }
      }
    }
    assertEquals(failures, []);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
