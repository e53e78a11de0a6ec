/**
 * The daemon's socket, for real: `serveDaemon` in this process with a command runner of the
 * test's, and `src/main.ts` as a client process. Served activations need devices:
 * tests/vm/e2e/daemon_test.ts runs them in the VM.
 */
import { assert, assertEquals, assertStringIncludes } from "../helpers/assert.ts";
import { type ClientIo, serveDaemon } from "../../src/daemon/server.ts";
import {
  MAX_REQUEST_BYTES,
  NotServedError,
  PROTOCOL,
  readMessage,
  socketPath,
  writeMessage,
} from "../../src/daemon/protocol.ts";
import { TemporaryError } from "../../src/errors.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

/** A daemon on a temporary state directory whose commands `run` carries out. */
async function withDaemon(
  run: (argv: string[], io: ClientIo) => Promise<number>,
  fn: (dir: string, stop: AbortController, logs: string[]) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-daemon-" });
  const stop = new AbortController();
  const logs: string[] = [];
  let listening!: () => void;
  const ready = new Promise<void>((r) => listening = r);
  const served = serveDaemon({
    stateDir: dir,
    signal: stop.signal,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(`warn ${m}`) },
    run,
    onListening: () => listening(),
  });
  try {
    await Promise.race([ready, served]);
    await fn(dir, stop, logs);
  } finally {
    stop.abort();
    await served;
    Deno.removeSync(dir, { recursive: true });
  }
}

/** `src/main.ts ARGS` as a client would run, with the socket granted. */
async function client(dir: string, args: string[], extra: string[] = []) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      `--allow-net=unix:${socketPath(dir)}`,
      ...extra,
      MAIN,
      "--state-dir",
      dir,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const td = new TextDecoder();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

async function request(dir: string, msg: unknown): Promise<unknown> {
  using conn = await Deno.connect({ transport: "unix", path: socketPath(dir) });
  await writeMessage(conn, msg);
  return await readMessage(conn, 1 << 20);
}

Deno.test("daemon: a client's activate is answered with the daemon's exit code and output", async () => {
  const seen: string[][] = [];
  await withDaemon(async (argv, io) => {
    seen.push(argv);
    io.stdout('{"device":"thinimage-x"}\n');
    io.stderr("made it\n");
    return await Promise.resolve(42);
  }, async (dir, _stop, logs) => {
    const r = await client(dir, ["activate", "golang", "--json"]);
    assertEquals(r.code, 42, r.stderr);
    assertEquals(r.stdout, '{"device":"thinimage-x"}\n');
    assertEquals(r.stderr, "made it\n");
    assertEquals(seen, [["--state-dir", dir, "activate", "golang", "--json"]]);
    assert(logs.some((l) => l.includes("activate golang --json: exit 42")), logs.join("\n"));
    assertEquals(Deno.statSync(socketPath(dir)).mode! & 0o777, 0o600);
  });
});

Deno.test("daemon: declined, or not a served command, the client runs the command itself", async () => {
  let calls = 0;
  await withDaemon(() => {
    calls++;
    throw new NotServedError("golang is not pulled here");
  }, async (dir) => {
    // Run here, the CLI's own answer: no pool in this state directory (exit 2).
    const declined = await client(dir, ["activate", "golang"], ["--allow-run", "--allow-sys"]);
    assertEquals(declined.code, 2, declined.stderr);
    assertStringIncludes(declined.stderr, "pool init");
    assertEquals(calls, 1);
    // Not handed over at all.
    const v = await client(dir, ["--version"]);
    assertEquals([v.code, v.stdout.startsWith("thinimage ")], [0, true], v.stderr);
    assertEquals(calls, 1);
  });
});

Deno.test("daemon: without the socket's grant, or with no daemon, the client runs it itself", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-daemon-" });
  try {
    // A socket file nobody listens on (a daemon that was killed): refused, so run here.
    const l = Deno.listen({ transport: "unix", path: socketPath(dir) });
    l.close();
    const r = await client(dir, ["activate", "golang"], ["--allow-run", "--allow-sys"]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, "pool init");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  await withDaemon(() => Promise.resolve(42), async (dir) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-check",
        "-R",
        "-W",
        "-E",
        "--allow-run",
        "--allow-sys",
        MAIN,
        "--state-dir",
        dir,
        "activate",
        "golang",
      ],
      stdin: "null",
    }).output();
    assertEquals(out.code, 2, "no net grant for the socket: not handed over");
  });
});

Deno.test("daemon: one command at a time, and a client that leaves stops its command", async () => {
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let leftAborted: Promise<void> | undefined;
  await withDaemon(async (argv, io) => {
    const id = argv.at(-1)!;
    order.push(`start ${id}`);
    if (id === "first") await gate;
    if (id === "leaves") {
      leftAborted = new Promise((r) => io.signal.addEventListener("abort", () => r()));
      await leftAborted;
      order.push("leaves aborted");
      return 75;
    }
    order.push(`end ${id}`);
    return 0;
  }, async (dir) => {
    const first = request(dir, { protocol: PROTOCOL, argv: ["activate", "first"] });
    await new Promise((r) => setTimeout(r, 100));
    const second = request(dir, { protocol: PROTOCOL, argv: ["activate", "second"] });
    await new Promise((r) => setTimeout(r, 200));
    assertEquals(order, ["start first"], "the second waits for the first");
    release();
    assertEquals(await first, { code: 0, stdout: "", stderr: "" });
    assertEquals(await second, { code: 0, stdout: "", stderr: "" });
    assertEquals(order, ["start first", "end first", "start second", "end second"]);

    const conn = await Deno.connect({ transport: "unix", path: socketPath(dir) });
    await writeMessage(conn, { protocol: PROTOCOL, argv: ["activate", "leaves"] });
    while (!order.includes("start leaves")) await new Promise((r) => setTimeout(r, 20));
    conn.close();
    while (!order.includes("leaves aborted")) await new Promise((r) => setTimeout(r, 20));
  });
});

Deno.test("daemon: peers that break the protocol get nothing and stop nothing", async () => {
  let calls = 0;
  await withDaemon(() => Promise.resolve(++calls), async (dir) => {
    const path = socketPath(dir);
    // Not JSON; JSON of the wrong shape; a line longer than any request.
    assertEquals(await request(dir, "not a request"), null);
    {
      using conn = await Deno.connect({ transport: "unix", path });
      await conn.write(new TextEncoder().encode("{oops\n"));
      assertEquals(await readMessage(conn, 1 << 20), null);
    }
    {
      using conn = await Deno.connect({ transport: "unix", path });
      const big = new Uint8Array(MAX_REQUEST_BYTES + 10).fill(0x61);
      await conn.write(big).catch(() => {});
      assertEquals(await readMessage(conn, 1 << 20).catch(() => null), null);
    }
    // Another protocol's client is told to do it itself.
    assertEquals(await request(dir, { protocol: PROTOCOL + 1, argv: ["activate", "x"] }), {
      fallback: `protocol ${PROTOCOL}`,
    });
    assertEquals(calls, 0);
    assertEquals(await request(dir, { protocol: PROTOCOL, argv: ["activate", "x"] }), {
      code: 1,
      stdout: "",
      stderr: "",
    });
  });
});

Deno.test("daemon: one per state directory; the socket goes when it stops", async () => {
  await withDaemon(() => Promise.resolve(0), async (dir, stop) => {
    let second: unknown;
    try {
      await serveDaemon({
        stateDir: dir,
        signal: new AbortController().signal,
        log: { info() {}, warn() {} },
        run: () => Promise.resolve(0),
      });
    } catch (err) {
      second = err;
    }
    assert(second instanceof TemporaryError, String(second));
    assertStringIncludes((second as Error).message, "a daemon already serves");
    assert(Deno.statSync(socketPath(dir)).isSocket);
    stop.abort();
    await new Promise((r) => setTimeout(r, 100));
    let gone = false;
    try {
      Deno.statSync(socketPath(dir));
    } catch {
      gone = true;
    }
    assert(gone, "the socket is removed on the way out");
  });
});
