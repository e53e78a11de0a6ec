import { assert, assertEquals } from "../helpers/assert.ts";
import { Logger } from "../../src/cli/log.ts";

function terminal() {
  const out: string[] = [];
  const log = new Logger({ level: "info", format: "text", write: (l) => out.push(l), tty: true });
  return { log, out, last: () => out[out.length - 1] };
}

Deno.test("progress: tasks running at once share the line until each reaches its total", () => {
  const { log, last } = terminal();
  log.progress("fetch 2.tar", 0, 2048);
  log.progress("unpack 1.tar", 1024, 4096); // within 100 ms: drawn later
  log.progress("fetch 2.tar", 2048, 2048); // finished: drawn at once, without itself
  assertEquals(last(), "\r\x1b[2Kunpack 1.tar: 1.0 KiB/4.0 KiB 25%");
  log.progress("fetch 3.tar", 512, 1024);
  log.progress("unpack 1.tar", 4096, 4096);
  assertEquals(last(), "\r\x1b[2Kfetch 3.tar: 512 B/1.0 KiB 50%");
});

Deno.test("progress: the last task to finish is shown complete, and info lines clear the line", () => {
  const { log, out, last } = terminal();
  log.progress("fetch 1.tar", 1024, 1024);
  assertEquals(last(), "\r\x1b[2Kfetch 1.tar: 1.0 KiB/1.0 KiB 100%");
  log.info("fetched images/golang/1.tar");
  assertEquals(out.slice(-2), ["\r\x1b[2K", "fetched images/golang/1.tar\n"]);
});

Deno.test("progress: nothing is drawn off a terminal or in JSON format", () => {
  const out: string[] = [];
  new Logger({ level: "info", format: "text", write: (l) => out.push(l) }).progress("x", 1, 2);
  new Logger({ level: "info", format: "json", write: (l) => out.push(l), tty: true }).progress(
    "x",
    1,
    2,
  );
  assert(out.length === 0, out.join(""));
});
