// normalizePath: one pass over the bytes decides what a name is; every rule it applies, and
// which one wins when a name breaks several (the order a reader of the rules expects).
import { assertEquals } from "../helpers/assert.ts";
import { normalizePath } from "../../src/tar/rules.ts";
import { COST_BOUNDS } from "../../src/tar/limits.ts";

const enc = new TextEncoder();
const L = { pathDepth: 4 };
const norm = (name: string | Uint8Array) =>
  normalizePath(typeof name === "string" ? enc.encode(name) : name, L);
const rule = (name: string | Uint8Array) => {
  const r = norm(name);
  return typeof r === "string" ? `ok:${r}` : r.rule;
};

Deno.test("normal names are kept as they are, the others normalized", () => {
  const cases: [string, string][] = [
    ["a", "a"],
    ["a/b/c", "a/b/c"],
    ["a/b/c/", "a/b/c"],
    ["./a", "a"],
    ["./", ""],
    [".", ""],
    ["a//b", "a/b"],
    ["a/./b", "a/b"],
    ["a/.", "a"],
    [".a/..b/b../...", ".a/..b/b../..."],
    ["é/ü", "é/ü"],
    ["a/b/c/d/", "a/b/c/d"],
    ["./a/b/c/d", "a/b/c/d"],
  ];
  for (const [name, want] of cases) assertEquals(rule(name), `ok:${want}`, name);
});

Deno.test("each broken rule is named, the first in the rules' order when several are", () => {
  const cases: [string | Uint8Array, string][] = [
    ["", "name-empty"],
    ["a\0b", "name-nul"],
    ["/a\0", "name-nul"],
    ["a".repeat(COST_BOUNDS.pathBytes + 1), "path-too-long"],
    [new Uint8Array([0x61, 0xff]), "name-utf8"],
    [new Uint8Array([0x2f, 0xff]), "name-utf8"],
    ["/a", "name-absolute"],
    ["//a", "name-absolute"],
    ["a/..", "name-dotdot"],
    ["../a", "name-dotdot"],
    ["a/../b/", "name-dotdot"],
    ["x".repeat(256), "component-too-long"],
    ["é".repeat(128), "component-too-long"],
    ["é".repeat(127) + "a", "ok:" + "é".repeat(127) + "a"],
    ["a/" + "x".repeat(256) + "/..", "component-too-long"],
    ["a/../" + "x".repeat(256), "name-dotdot"],
    ["x".repeat(256) + "/", "component-too-long"],
    ["a/b/c/d/e", "path-depth"],
    ["a/b/c/d/e/", "path-depth"],
    ["./a/./b/c/d/e", "path-depth"],
  ];
  for (const [name, want] of cases) {
    assertEquals(rule(name), want, typeof name === "string" ? name.slice(0, 40) : String(name));
  }
});
