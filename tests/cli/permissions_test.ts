import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { fileURLToPath } from "node:url";
import {
  permissionFlags,
  PUBLIC_S3_HOSTS,
  taskPermissionFlags,
} from "../../src/cli/permissions.ts";
import { TOOLS } from "../../src/devmapper/tools.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: repo,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("the thinimage task runs with exactly the permission flags of src/cli/permissions.ts", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${repo}/deno.json`)).tasks;
  assertEquals(tasks.thinimage, `deno run ${taskPermissionFlags().join(" ")} src/main.ts`);
  assertEquals(tasks.activate, "deno task thinimage activate");
});

Deno.test("the shipped task and the default launcher reach the public bucket's hosts only", async () => {
  // ... and the default state directory's daemon socket, which is local.
  const publicOnly = `--allow-net=${PUBLIC_S3_HOSTS.join(",")},unix:/var/lib/thinimage/daemon.sock`;
  const tasks = JSON.parse(await Deno.readTextFile(`${repo}/deno.json`)).tasks;
  const net = (flags: string[]) => flags.filter((f) => f.startsWith("--allow-net"));
  assertEquals(net(tasks.thinimage.split(" ")), [publicOnly]);
  const r = await run(Deno.execPath(), [
    "run",
    "-A",
    "scripts/install.ts",
    "--root",
    "/nonexistent",
    "--dry-run",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(net(JSON.parse(r.stdout)), [publicOnly]);
  for (const text of [tasks.thinimage, r.stdout]) {
    assert(!/127\.|localhost|::1/.test(text), `a loopback host is granted: ${text}`);
  }
});

Deno.test("permission flags name every device tool by absolute path and S3 hosts only", () => {
  const flags = permissionFlags({ netHosts: ["127.0.0.1:7480"] });
  const run = flags.find((f) => f.startsWith("--allow-run="))!;
  for (const tool of Object.values(TOOLS)) {
    assert(tool.startsWith("/"), `${tool} is not absolute`);
    assertStringIncludes(run, tool);
  }
  assert(flags.includes("--allow-net=127.0.0.1:7480,unix:/var/lib/thinimage/daemon.sock"));
  const elsewhere = permissionFlags({ netHosts: ["127.0.0.1:7480"], stateDir: "/srv/ti/" });
  assert(elsewhere.includes("--allow-net=127.0.0.1:7480,unix:/srv/ti/daemon.sock"));
  assert(!flags.some((f) => f === "--allow-net" || f === "--allow-run" || f === "--allow-env"));
});

Deno.test("install writes a launcher locked to those flags, and it runs", async () => {
  const root = await Deno.makeTempDir({ prefix: "thinimage-install-" });
  try {
    const r = await run(Deno.execPath(), [
      "task",
      "install",
      "--root",
      root,
      "--endpoint",
      "http://127.0.0.1:7480",
    ]);
    assertEquals(r.code, 0, r.stderr);
    // The launcher shell-quotes some flags: compare without the quotes.
    const launcher = (await Deno.readTextFile(`${root}/bin/thinimage`)).replaceAll("'", "");
    for (const f of permissionFlags({ netHosts: ["127.0.0.1:7480"] })) {
      assertStringIncludes(launcher, ` ${f} `);
    }
    assert(!launcher.includes("--allow-all") && !launcher.includes(" -A "));
    const state = `${root}/state`;
    const help = await run(`${root}/bin/thinimage`, ["--help"]);
    assertEquals(help.code, 0, help.stderr);
    const ls = await run(`${root}/bin/thinimage`, ["--state-dir", state, "ls", "--json"]);
    assertEquals(ls.code, 0, ls.stderr);
    assertEquals(JSON.parse(ls.stdout), { images: [], activations: [] });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("compile uses the same flags", async () => {
  const r = await run(Deno.execPath(), [
    "run",
    "-A",
    "scripts/install.ts",
    "--compile",
    "--dry-run",
    "--endpoint",
    "http://127.0.0.1:7480",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const argv: string[] = JSON.parse(r.stdout);
  assertEquals(argv[1], "compile");
  for (const f of permissionFlags({ netHosts: ["127.0.0.1:7480"] })) assert(argv.includes(f), f);
});
