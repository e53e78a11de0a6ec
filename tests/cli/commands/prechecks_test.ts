/**
 * Fail fast and say why (issue 13), on the host: a `pull` or `activate` that cannot succeed
 * for a local reason fails before its first S3 request, with the right exit code and a first
 * line a person acts on. The endpoint is a counting HTTP server on loopback: the tests assert
 * how many requests reached it (zero). The CLI runs as a user runs it, a separate process
 * with the production permission flags narrowed to that endpoint.
 */
import { assert, assertEquals, assertStringIncludes } from "../../helpers/assert.ts";
import { join } from "node:path";
import { permissionFlags } from "../../../src/cli/permissions.ts";
import { openStore } from "../../../src/store/db.ts";
import { DeviceRecords } from "../../../src/devmapper/records.ts";

const MAIN = new URL("../../../src/main.ts", import.meta.url).pathname;

/** An HTTP server on 127.0.0.1 that counts requests and answers 503. */
function countingServer() {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push(`${req.method} ${new URL(req.url).pathname}${new URL(req.url).search}`);
    return new Response("busy", { status: 503 });
  });
  return { endpoint: `http://127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

async function thinimage(endpoint: string, stateDir: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...permissionFlags({ netHosts: [new URL(endpoint).host] }),
      MAIN,
      "--state-dir",
      stateDir,
      ...args,
    ],
    env: {
      THINIMAGE_S3_ENDPOINT: endpoint,
      THINIMAGE_BUCKET: "fixtures",
      NO_COLOR: "1",
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("an unknown pool: exit 2, the fix on the first line, no S3 request", async () => {
  const s3 = countingServer();
  const dir = await Deno.makeTempDir({ prefix: "thinimage-pre-" });
  try {
    const firstLine = async (...args: string[]) => {
      const r = await thinimage(s3.endpoint, dir, ...args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert(!r.stderr.includes("run 01"), "no run was started for a local failure");
      return r.stderr.split("\n")[0];
    };
    assertEquals(
      await firstLine("pull", "alpha"),
      "error: no thin pool is set up in this state directory: make one with 'thinimage pool init', or adopt an existing one with 'thinimage pool init --pool NAME'",
    );
    const adopt =
      "error: no pool named 'pool' here: adopt it with 'thinimage pool init --pool pool'";
    assertEquals(await firstLine("pull", "alpha", "--pool", "pool"), adopt);
    // A state directory that knows another pool says so too.
    const store = openStore(join(dir, "thinimage.db"));
    new DeviceRecords(store).upsertPool({
      name: "thinimage-other",
      adopted: false,
      tableLine: "0 8 thin-pool 7:0 7:1 128 0",
      blockSectors: 128,
      dataSectors: 8,
    });
    store.close();
    const also = " (this state directory has thinimage-other)";
    for (const pull of ["always", "missing", "never"]) {
      assertEquals(
        await firstLine("activate", "alpha", "--pool", "pool", "--pull", pull),
        adopt + also,
      );
    }
    assertEquals(s3.seen, [], "no request reached S3");
  } finally {
    await s3.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad names and flags: exit 2 before anything is opened or requested", async () => {
  const s3 = countingServer();
  const dir = await Deno.makeTempDir({ prefix: "thinimage-pre-" });
  const state = join(dir, "state");
  try {
    const cases: [string[], string][] = [
      [["activate", "golang", "--pool=--help"], `invalid pool name "--help" for --pool`],
      [["activate", "golang", "--name", "-x"], "option '--name' argument is ambiguous"],
      [["activate", "golang", "--pull", "sometimes"], "--pull must be one of missing, always"],
      [["activate", "golang", "--offline", "--pull", "always"], "--offline and --pull always"],
      [["pull", "--", "-golang"], `invalid image name "-golang" for IMAGE`],
      [["activate", "golang", "--endpoint", "ftp://x"], "invalid endpoint"],
    ];
    for (const [args, text] of cases) {
      const r = await thinimage(s3.endpoint, state, ...args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assertStringIncludes(r.stderr.split("\n")[0], text);
    }
    assertEquals(s3.seen, []);
  } finally {
    await s3.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no network permission for the endpoint: named before any request", async () => {
  const dir = await Deno.makeTempDir({ prefix: "thinimage-pre-" });
  try {
    const store = openStore(join(dir, "thinimage.db"));
    new DeviceRecords(store).upsertPool({
      name: "pool",
      adopted: true,
      tableLine: "0 8 thin-pool 7:0 7:1 128 0",
      blockSectors: 128,
      dataSectors: 8,
    });
    store.close();
    // The launcher allows 127.0.0.1:1 only; the endpoint asked for is elsewhere.
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags({ netHosts: ["127.0.0.1:1"] }),
        MAIN,
        "--state-dir",
        dir,
        "pull",
        "golang",
        "--endpoint",
        "http://127.0.0.2:7480",
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertEquals(
      stderr.split("\n")[0],
      "error: missing permission: run with --allow-net=127.0.0.2:7480",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stopped S3 server: exit 69, 'cannot reach the S3 endpoint (connection refused)'", async () => {
  const s3 = countingServer();
  const endpoint = s3.endpoint;
  await s3.close(); // nothing listens on its port any more
  const dir = await Deno.makeTempDir({ prefix: "thinimage-pre-" });
  try {
    const r = await thinimage(endpoint, dir, "fetch", "golang");
    assertEquals(r.code, 69, r.stderr);
    assertStringIncludes(
      r.stderr.split("\n")[0],
      "error: cannot reach the S3 endpoint (connection refused): check the network and --endpoint",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
