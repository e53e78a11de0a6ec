// deviceLibc's own bindings (struct-declared results, addresses for pointers), in a process
// that has not loaded the full libc bindings: results, errno and paths as libc() gives them.
import { assertEquals } from "../helpers/assert.ts";
import { LIBC_PATH } from "../../src/host/libc.ts";

const SCRIPT = `
import { AT, deviceLibc, O } from "${new URL("../../src/host/libc.ts", import.meta.url).href}";
const c = deviceLibc();
const out = {};
const code = (f) => { try { f(); return "ok"; } catch (e) { return e.code; } };
const nul = c.statat(AT.FDCWD, "/dev/null");
out.null = [nul.mode & 0o170000, nul.rdev];
out.missing = code(() => c.open("/nonexistent/thinimage", O.RDONLY));
const dir = Deno.args[0];
const dfd = c.open(dir, O.RDONLY | O.DIRECTORY);
out.mkfifo = code(() => c.mknodat(dfd, "fifo", 0o010600, 0n));
out.again = code(() => c.mknodat(dfd, "fifo", 0o010600, 0n));
out.fifo = c.statat(AT.FDCWD, dir + "/fifo").mode & 0o170000;
out.unlink = code(() => c.unlinkat(dfd, "fifo", 0));
out.gone = code(() => c.statat(dfd, "fifo"));
const fd = c.open("/dev/null", O.RDWR);
out.ioctl = code(() => c.ioctl(fd, 0xc138fd00n, new Uint8Array(312)));
console.log(JSON.stringify(out));
`;

Deno.test("deviceLibc: its few calls, their results and errnos, bound on their own", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", `--allow-ffi=${LIBC_PATH}`, "--allow-read", SCRIPT, dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assertEquals(out.code, 0, dec.decode(out.stderr));
    assertEquals(JSON.parse(dec.decode(out.stdout)), {
      null: [0o020000, "1:3"], // a character device, 1:3
      missing: "ENOENT",
      mkfifo: "ok",
      again: "EEXIST",
      fifo: 0o010000,
      unlink: "ok",
      gone: "ENOENT",
      ioctl: "errno 25", // ENOTTY: /dev/null takes no device-mapper request
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
