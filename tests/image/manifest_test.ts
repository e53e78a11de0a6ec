import {
  assertEquals,
  assertNotEquals,
  assertStringIncludes,
  assertThrows,
} from "../helpers/assert.ts";
import {
  buildManifest,
  describeIgnored,
  type ListedObject,
  ManifestBuilder,
  manifestDigest,
} from "../../src/image/manifest.ts";
import { InvalidInputError, NotInSourceError } from "../../src/errors.ts";

const P = "images/app/";
const obj = (name: string, size = 100, etag = `etag-${name}`): ListedObject => ({
  key: P + name,
  size,
  etag,
  lastModified: "2024-01-01T00:00:00.000Z",
});

Deno.test("manifest: layers come in numeric order, 10 after 9", () => {
  const names = Array.from({ length: 12 }, (_, i) => `${i + 1}.tar`).sort(); // 1, 10, 11, 12, 2...
  const m = buildManifest("app", P, names.map((n) => obj(n)));
  assertEquals(m.layers.map((l) => l.index), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assertEquals(m.layers[9].key, "images/app/10.tar");
  assertEquals(m.image, "app");
});

Deno.test("manifest: other keys are reported and ignored", () => {
  const m = buildManifest("app", P, [
    obj("1.tar"),
    obj("README.md"),
    obj("sub/1.tar"),
    obj("layer2.tar"),
  ]);
  assertEquals(m.layers.length, 1);
  assertEquals(m.ignored, {
    count: 3,
    examples: ["images/app/README.md", "images/app/layer2.tar", "images/app/sub/1.tar"],
  });
});

Deno.test("manifest: ignored keys are counted, three named (the first in key order), none kept", () => {
  const junk = Array.from(
    { length: 5000 },
    (_, i) => obj(`junk-${String(4999 - i).padStart(4, "0")}`),
  );
  const m = buildManifest("app", P, [...junk, obj("1.tar")]);
  assertEquals(m.ignored, {
    count: 5000,
    examples: ["images/app/junk-0000", "images/app/junk-0001", "images/app/junk-0002"],
  });
  assertEquals(
    describeIgnored(m),
    'app: ignored 5000 key(s) that are not layers ("images/app/junk-0000", "images/app/junk-0001", "images/app/junk-0002", ...)',
  );
});

Deno.test("manifest: more keys than maxKeys under the prefix are refused (65) as they arrive", () => {
  const b = new ManifestBuilder("app", P, { maxKeys: 10 });
  b.add(obj("1.tar"));
  for (let i = 0; i < 9; i++) b.add(obj(`junk${i}`));
  const err = assertThrows(() => b.add(obj("junk9")), InvalidInputError, "more than 10 keys under");
  assertEquals(err.exitCode, 65);
  assertStringIncludes(err.message, "--max-keys raises the limit");
});

Deno.test("manifest: the digest covers order, key, size and ETag, and nothing else", () => {
  const base = [obj("1.tar"), obj("2.tar")];
  const d = buildManifest("app", P, base).digest;
  assertEquals(d.startsWith("sha256:"), true);
  assertEquals(
    buildManifest("app", P, [...base].reverse()).digest,
    d,
    "listing order is irrelevant",
  );
  const later = base.map((o) => ({ ...o, lastModified: "2025-01-01T00:00:00.000Z" }));
  assertEquals(buildManifest("app", P, later).digest, d, "a re-upload of the same bytes keeps it");
  assertEquals(buildManifest("app", P, [...base, obj("notes.txt")]).digest, d);
  assertNotEquals(buildManifest("app", P, [obj("1.tar"), obj("2.tar", 101)]).digest, d);
  assertNotEquals(buildManifest("app", P, [obj("1.tar"), obj("2.tar", 100, "other")]).digest, d);
  assertNotEquals(
    manifestDigest([{ key: "a", size: 1, etag: "b" }]),
    manifestDigest([{ key: "a", size: 1, etag: "c" }]),
  );
});

Deno.test("manifest: refusals name the offending key and exit 65", () => {
  const cases: [ListedObject[], string, string][] = [
    [[obj("README")], "no layers", P],
    [[obj("1.tar"), obj("3.tar")], "gap in the layer numbering", "images/app/2.tar"],
    [[obj("2.tar")], "gap in the layer numbering", "images/app/1.tar"],
    [[obj("1.tar"), obj("01.tar")], "malformed layer name", "images/app/01.tar"],
    [[obj("1.tar"), obj("2.TAR")], "malformed layer name", "images/app/2.TAR"],
    [[obj("1.tar/")], "malformed layer name", "images/app/1.tar/"],
    [[obj("1.tar"), obj("2.tar.gz")], "malformed layer name", "images/app/2.tar.gz"],
    [[obj("0.tar")], "malformed layer name", "images/app/0.tar"],
    [[obj("1.tar"), obj("2\u0007.tar")], "control characters", "images/app/2\u0007.tar"],
    [[obj("1.tar"), obj("notes\n.txt")], "control characters", "images/app/notes\n.txt"],
    [[obj("1.tar"), obj("1.tar")], "listed twice", "images/app/1.tar"],
    [[obj("1.tar", -1)], "impossible size", "images/app/1.tar"],
    [[obj("1.tar", 1, "")], "no ETag", "images/app/1.tar"],
    [[{ ...obj("1.tar"), key: "images/other/1.tar" }], "outside", "images/other/1.tar"],
  ];
  for (const [objects, message, key] of cases) {
    const err = assertThrows(() => buildManifest("app", P, objects), InvalidInputError, message);
    assertEquals(err.exitCode, 65);
    assertEquals(err.details?.key, key, message);
    assertEquals(
      // deno-lint-ignore no-control-regex
      /[\u0000-\u001f]/.test(err.message),
      false,
      "no raw control characters in messages",
    );
  }
});

Deno.test("manifest: nothing under the prefix is an image the source does not have (69)", () => {
  const err = assertThrows(
    () => buildManifest("app", P, []),
    NotInSourceError,
    "not in the bucket",
  );
  assertEquals(err.exitCode, 69);
  assertEquals(err.details?.key, P);
  // Keys that are there but are no layers are the listing's fault: still 65.
  assertEquals(
    assertThrows(() => buildManifest("app", P, [obj("README")]), InvalidInputError).exitCode,
    65,
  );
});

Deno.test("manifest: the layer limit is configurable and huge numbers never parse", () => {
  const three = [obj("1.tar"), obj("2.tar"), obj("3.tar")];
  assertEquals(buildManifest("app", P, three, { maxLayers: 3 }).layers.length, 3);
  assertThrows(
    () => buildManifest("app", P, three, { maxLayers: 2 }),
    InvalidInputError,
    "beyond the limit of 2 layers",
  );
  const huge = obj(`${"9".repeat(400)}.tar`);
  const err = assertThrows(
    () => buildManifest("app", P, [obj("1.tar"), huge]),
    InvalidInputError,
    "beyond the limit",
  );
  assertEquals(err.details?.key, huge.key);
  assertThrows(
    () => buildManifest("app", P, [obj("1.tar"), obj("129.tar")]),
    InvalidInputError,
    "limit of 128",
  );
});
