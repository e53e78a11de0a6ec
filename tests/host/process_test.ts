import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { formatOwner, LockLiveness, OwnerLock, parseOwner } from "../../src/host/process.ts";

Deno.test("owner ids round-trip, hostnames with slashes included", () => {
  const p = { host: "rack/7", pid: 4242, start: 1_700_000_000_123 };
  assertEquals(parseOwner(formatOwner(p)), p);
  assertEquals(parseOwner("not an owner"), undefined);
});

Deno.test("an owner is alive while its process holds its lock, dead once SIGKILLed", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-owner-test-" });
  try {
    const code = `
      import { OwnerLock } from ${
      JSON.stringify(new URL("../../src/host/process.ts", import.meta.url).href)
    };
      console.log(OwnerLock.acquire(Deno.args[0]).owner);
      setInterval(() => {}, 1000); // alive until killed
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code, dir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) line += (await reader.read()).value ?? "";
    const owner = line.trim();
    const live = new LockLiveness(dir);
    assertEquals(live.status(owner), "alive");
    assertEquals(live.status(owner), "alive"); // probing does not steal the lock
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    assertEquals(live.status(owner), "dead");
    assertEquals(live.status(owner), "dead"); // and stays dead once its file is cleaned up
    const p = parseOwner(owner)!;
    assertEquals(new LockLiveness(dir, `${p.host}-elsewhere`).status(owner), "unknown");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("this process's own lock reads alive, and is taken once", () => {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-owner-test-" });
  try {
    const me = OwnerLock.acquire(dir);
    assertEquals(OwnerLock.acquire(dir), me);
    assertEquals(new LockLiveness(dir).status(me.owner), "alive");
    me.release();
    assertEquals(new LockLiveness(dir).status(me.owner), "dead");
    assertThrows(() => Deno.statSync(me.path), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
