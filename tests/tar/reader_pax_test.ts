// Global pax records reach every later entry through the reader, per-entry records override
// or unset them, and only honoured keys set fields.
import { assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { TarReader } from "../../src/tar/reader.ts";
import { openLayerSource } from "../../src/tar/source.ts";

async function entries(
  t: Tar,
): Promise<{ name: string; uid: number; gid: number; mtime: number }[]> {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-reader-pax-test-" });
  try {
    const src = await openLayerSource(t.write(dir));
    const r = new TarReader(src, { paxHeaderBytes: 1 << 20 });
    const out = [];
    for (let e = await r.next(); e; e = await r.next()) {
      out.push({ name: e.displayName, uid: e.uid, gid: e.gid, mtime: e.mtime });
    }
    src.close();
    return out;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("global pax values apply to later entries; per-entry ones override or unset them", async () => {
  const got = await entries(
    new Tar()
      .file("before", "", { uid: 1 })
      .pax([
        ["uid", "500"],
        ["gid", "50"],
        ["uname", "svc"],
        ["comment", "ignored"],
        ["SCHILY.ino1", "7"],
      ], true)
      .file("global", "", { uid: 2 })
      .pax([["uid", "600"]])
      .file("own", "", { uid: 3 })
      .pax([["uid", ""]])
      .file("unset", "", { uid: 4 })
      .pax([["gid", ""]], true)
      .pax([["mtime", "5.5"]])
      .file("mtime", "", { uid: 6, gid: 7 })
      .end(),
  );
  // Owners are set by number: user and group names, global or not, set nothing.
  assertEquals(got, [
    { name: "before", uid: 1, gid: 0, mtime: 1700000000 },
    { name: "global", uid: 500, gid: 50, mtime: 1700000000 },
    { name: "own", uid: 600, gid: 50, mtime: 1700000000 },
    { name: "unset", uid: 4, gid: 50, mtime: 1700000000 },
    { name: "mtime", uid: 500, gid: 7, mtime: 5.5 },
  ]);
});
