// Global pax records reach every later entry through the reader, per-entry records override
// or unset them, and only honoured keys set fields.
import { assertEquals } from "../helpers/assert.ts";
import { Tar } from "./tar_builder.ts";
import { TarReader } from "../../src/tar/reader.ts";
import { openLayerSource } from "../../src/tar/source.ts";

async function entries(
  t: Tar,
): Promise<{ name: string; uid: number; mtime: number; uname: string }[]> {
  const dir = Deno.makeTempDirSync({ prefix: "thinimage-reader-pax-test-" });
  try {
    const src = await openLayerSource(t.write(dir));
    const r = new TarReader(src, { paxHeaderBytes: 1 << 20 });
    const out = [];
    for (let e = await r.next(); e; e = await r.next()) {
      out.push({ name: e.displayName, uid: e.uid, mtime: e.mtime, uname: e.uname });
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
      .pax([["uid", "500"], ["uname", "svc"], ["comment", "ignored"], ["SCHILY.ino1", "7"]], true)
      .file("global", "", { uid: 2 })
      .pax([["uid", "600"]])
      .file("own", "", { uid: 3 })
      .pax([["uid", ""]])
      .file("unset", "", { uid: 4 })
      .pax([["uname", ""]], true)
      .pax([["mtime", "5.5"]])
      .file("mtime", "", { uid: 6, uname: "hdr" })
      .end(),
  );
  assertEquals(got, [
    { name: "before", uid: 1, mtime: 1700000000, uname: "" },
    { name: "global", uid: 500, mtime: 1700000000, uname: "svc" },
    { name: "own", uid: 600, mtime: 1700000000, uname: "svc" },
    { name: "unset", uid: 4, mtime: 1700000000, uname: "svc" },
    { name: "mtime", uid: 500, mtime: 5.5, uname: "hdr" },
  ]);
});
