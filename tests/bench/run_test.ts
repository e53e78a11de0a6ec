/**
 * The benchmark table's verdicts: a target is met only when every part of it is, from the
 * samples the benches report (not from their own Markdown).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { type FetchJson, fetchRows, table, tarRows, vmRows } from "../../bench/run.ts";
import { summary, type VmResults } from "../../bench/vm.ts";

Deno.test("summary: median of odd and even counts, min and max", () => {
  assertEquals(summary([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assertEquals(summary([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
});

function fetchJson(ours: number[], rssBig: number): FetchJson {
  return {
    image: "golang",
    layers: 5,
    bytes: 900e6,
    rounds: ours.length,
    ceilingsMBps: {},
    seconds: {
      "thinimage fetch": ours,
      "curl, one at a time": [4, 4, 4],
      "curl --parallel-max 2": [3, 3, 3],
    },
    peakRssMiB: { "64MiB": 100, "1GiB": rssBig },
  };
}

Deno.test("fetch: ratio against the faster curl; RSS over 200 MiB fails even when fast", () => {
  const fast = fetchRows(fetchJson([3.2, 3.3, 3.1], 150))[0];
  assertEquals(fast.ratio, "0.94x");
  assertEquals(fast.met, "yes");
  assertEquals(fetchRows(fetchJson([3.2, 3.3, 3.1], 250))[0].met, "no");
  assertEquals(fetchRows(fetchJson([6, 6, 6], 150))[0].met, "no");
});

Deno.test("validate: met at >= 1x sha256sum; host apply is reference only", () => {
  const rows = tarRows({
    layerBytes: 400e6,
    entries: 1000,
    target: "tmpfs",
    rounds: 3,
    rows: {
      "sha256sum": { s: [2, 2, 2], rssKiB: [1000] },
      "thinimage validate": { s: [1, 1, 1], rssKiB: [70000] },
      "GNU tar -x": { s: [1, 1, 1], rssKiB: [1000] },
      "thinimage apply --sha256": { s: [4, 4, 4], rssKiB: [80000] },
    },
  });
  assertEquals(rows.map((r) => [r.ratio, r.met]), [["2.00x", "yes"], ["0.25x", "-"]]);
});

const stat = (x: number) => summary([x]);
function vm(
  over: {
    coldS?: number;
    gets?: number;
    requests?: number;
    warmMs?: number;
    daemonMs?: number;
    poolBytes?: number;
    dl?: number;
  } = {},
): VmResults {
  return {
    kernel: "6.1",
    cpus: 2,
    memMiB: 4096,
    apply: {
      layerBytes: 20e6,
      entries: 100,
      trees: ["/usr"],
      thinimageS: stat(12),
      onePassS: stat(10),
      tarS: stat(9),
    },
    cold: {
      fixture: "scaled",
      thinimageS: stat(over.coldS ?? 10),
      naiveS: stat(20),
      thinimageBytes: over.dl ?? 3e6,
      naiveBytes: 6e6,
      thinimageDataBytes: over.poolBytes ?? 10e6,
      naiveDataBytes: 20e6,
      thinimageMetaBlocks: 400,
      naiveMetaBlocks: 420,
      blockBytes: 65536,
      deviceBytes: 8 * 2 ** 30,
      uniqueUnpackedBytes: 9e6,
      naiveUnpackedBytes: 19e6,
      uniqueBlobBytes: 3e6,
    },
    warm: {
      newNameMs: stat(over.warmMs ?? 150),
      sameNameMs: stat(140),
      ...(over.daemonMs === undefined
        ? {}
        : { daemonNewNameMs: stat(over.daemonMs), daemonSameNameMs: stat(105) }),
      floorMs: stat(100),
      requests: over.requests ?? over.gets ?? 0,
      gets: over.gets ?? 0,
      paths: [],
    },
  };
}

Deno.test("VM rows: cold needs faster and about half; sharing needs unique downloads and <= 1.15x; warm needs <= 2x and no S3 request", () => {
  assertEquals(vmRows(vm()).map((r) => r.met), ["yes", "yes", "yes", "yes", "-"]);
  assertEquals(vmRows(vm({ coldS: 25 }))[1].met, "no");
  assertEquals(vmRows(vm({ poolBytes: 9e6 * 1.16 }))[2].met, "no");
  assertEquals(vmRows(vm({ dl: 3e6 + 1 }))[2].met, "no");
  assertEquals(vmRows(vm({ gets: 1 }))[3].met, "no");
  assertEquals(vmRows(vm({ requests: 1 }))[3].met, "no", "a listing is a request too");
  assertEquals(vmRows(vm({ warmMs: 201 }))[3].met, "no");
});

Deno.test("VM rows: with a daemon measured, its warm row follows, held to the same target", () => {
  const rows = vmRows(vm({ warmMs: 300, daemonMs: 180 }));
  assertEquals(rows.map((r) => r.met), ["yes", "yes", "yes", "no", "yes", "-"]);
  assert(rows[4].what.includes("daemon"), rows[4].what);
  assertEquals(rows[4].ratio, "1.80x the floor");
  assertEquals(vmRows(vm({ daemonMs: 201 }))[4].met, "no");
  assertEquals(vmRows(vm({ daemonMs: 150, requests: 1 }))[4].met, "no");
});

Deno.test("table: one Markdown row per result, pipes in cells escaped", () => {
  const md = table([
    { what: "a|b", ours: "1", against: "2", ratio: "0.5x", target: "t", met: "no", data: "d" },
  ]);
  const lines = md.split("\n");
  assertEquals(lines.length, 3);
  assert(lines[2].startsWith("| a\\|b | 1 | 2 | 0.5x | t | no | d |"), lines[2]);
});
