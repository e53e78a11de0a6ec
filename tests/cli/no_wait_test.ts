/**
 * `--no-wait`: a pull or an activation that finds another live process doing the same work exits
 * 75 at once instead of waiting for it (README, Two commands). Real processes with the product's
 * flags; the first is held in its listing by a fault proxy that never answers, so this runs on
 * any host (no device is needed before the listing). Then SIGTERM stops the held pull with 75.
 */
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { interruptWhen } from "../helpers/signal.ts";
import { s3Env } from "../helpers/s3.ts";
import { startFaultProxy } from "../../scripts/fault-proxy.ts";
import { permissionFlags } from "../../src/cli/permissions.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

Deno.test("--no-wait beside a live pull of the same image exits 75 at once; SIGTERM then stops the pull (75)", async () => {
  const state = await Deno.makeTempDir({ prefix: "thinimage-nowait-" });
  const proxy = startFaultProxy({
    upstream: s3Env().endpoint,
    fault: (req) => req.path.includes("list-type") ? { kind: "hang" } : undefined,
  });
  const cli = (args: string[], signal?: AbortSignal) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        ...permissionFlags({ netHosts: [new URL(proxy.url).host] }),
        MAIN,
        "--state-dir",
        state,
        ...args,
        "--endpoint",
        proxy.url,
        "--bucket",
        s3Env().bucket,
      ],
      env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    });
  try {
    const first = cli(["pull", "golang"]).spawn();
    let second: Deno.CommandOutput | undefined;
    const r = await interruptWhen(first, async () => {
      if (!proxy.requests.some((q) => q.fault === "hang")) return false;
      // Waiting would last as long as the first pull: a minute is plenty for a refusal.
      for (const cmd of [["pull", "golang"], ["activate", "golang"]]) {
        second = await cli([...cmd, "--no-wait"], AbortSignal.timeout(60_000)).output();
        const err = new TextDecoder().decode(second.stderr);
        assertEquals([cmd[0], second.code, second.signal], [cmd[0], 75, null], err);
        assertStringIncludes(err, "--no-wait");
        if (cmd[0] === "activate") break;
      }
      return true;
    });
    assert(second !== undefined);
    console.log(`pull: stopped ${Math.round(r.stopMs)} ms after SIGTERM, exit ${r.code}`);
    assertEquals([r.code, r.signal], [75, null], r.stderr);
    assert(r.stopMs < 2000, `pull took ${Math.round(r.stopMs)} ms to stop`);
  } finally {
    await proxy.close();
    await Deno.remove(state, { recursive: true });
  }
});
