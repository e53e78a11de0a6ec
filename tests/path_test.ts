import * as node from "node:path";
import { assertEquals } from "./helpers/assert.ts";
import { dirname, join, normalize } from "../src/path.ts";

const PATHS = [
  "",
  "/",
  "//",
  ".",
  "..",
  "./",
  "../",
  "a",
  "a/",
  "/a",
  "/a/",
  "a//b",
  "/a/b/c",
  "/a/b/c/",
  "/a/b/c//",
  "a/./b",
  "a/../b",
  "a/../../b",
  "/a/../../b",
  "./state",
  "../x/./y/..",
  "/var/lib/thinimage/",
  "///x///y///",
  "a/..",
  "/..",
];

Deno.test("path: join, normalize and dirname agree with node:path (posix)", () => {
  for (const p of PATHS) {
    assertEquals(normalize(p), node.posix.normalize(p), `normalize ${JSON.stringify(p)}`);
    assertEquals(dirname(p), node.posix.dirname(p), `dirname ${JSON.stringify(p)}`);
    for (const q of PATHS) {
      assertEquals(join(p, q), node.posix.join(p, q), `join ${JSON.stringify([p, q])}`);
    }
  }
  assertEquals(join(), node.posix.join());
  assertEquals(join("/var/lib/x", "pool", "a.data"), "/var/lib/x/pool/a.data");
});
