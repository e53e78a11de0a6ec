// The compact path memory of the rules: a keyed hash, prefixes hashed in one pass, a table.
import { assert, assertEquals } from "../helpers/assert.ts";
import { HashTable, PathHasher } from "../../src/tar/pathhash.ts";

Deno.test("path hashes: prefixes hash as the same paths spelled whole; seeds differ", () => {
  const h = new PathHasher();
  const seen: number[] = [];
  h.prefixes("usr/share/dé/x", (k) => (seen.push(k), false));
  assertEquals(seen, ["usr", "usr/share", "usr/share/dé"].map((p) => h.hash(p)));
  assert(h.prefixes("a/b", (k) => k === h.hash("a")));
  assert(!h.prefixes("ab", () => true), "no '/', no proper prefix");
  for (const p of ["", "a", "a/b", "é"]) {
    const k = h.hash(p);
    assert(Number.isSafeInteger(k) && k > 0 && k < 2 ** 53, `${p}: ${k}`);
  }
  assert(new PathHasher().hash("usr/bin") !== new PathHasher().hash("usr/bin"));
  const fixed = new Uint32Array([1, 2]);
  assertEquals(new PathHasher(fixed).hash("usr/bin"), new PathHasher(fixed).hash("usr/bin"));
});

Deno.test("path hashes: no collision among 200,000 similar paths", () => {
  const h = new PathHasher();
  const keys = new Set<number>();
  for (let i = 0; i < 100_000; i++) {
    keys.add(h.hash(`usr/lib/python3/f${i}`));
    keys.add(h.hash(`usr/lib/python3/f${i}/`.slice(0, -1) + "x"));
  }
  assertEquals(keys.size, 200_000);
});

Deno.test("path hashes: the same names in many directories neither collide nor share a slot", () => {
  // The table probes from the low 32 bits: a directory must move them too, or every
  // directory's "f1" starts at one slot and each insert walks a run as long as the directories.
  const h = new PathHasher();
  const keys = new Set<number>();
  const low = new Set<number>();
  for (let dir = 1000; dir < 3000; dir++) {
    for (const ino of [dir, dir + 2 ** 40]) {
      for (let f = 0; f < 50; f++) {
        const k = h.hashIn(ino, `f${f}`);
        keys.add(k);
        low.add(k >>> 0);
      }
    }
  }
  assertEquals(keys.size, 200_000);
  assert(low.size > 199_000, `only ${low.size} distinct low words of 200,000`);
});

Deno.test("hash table: set, replace, get, grow", () => {
  const t = new HashTable(16);
  const h = new PathHasher();
  for (let i = 0; i < 10_000; i++) t.set(h.hash(`p${i}`), i * 2);
  t.set(h.hash("p7"), 1);
  assertEquals(t.size, 10_000);
  assertEquals(t.get(h.hash("p7")), 1);
  assertEquals(t.get(h.hash("p9999")), 19998);
  assertEquals(t.get(h.hash("q")), undefined);
  assertEquals(t.get(h.hash("p0")), 0);
});
