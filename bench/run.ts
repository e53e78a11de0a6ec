/**
 * `deno task bench`: every comparison of bench/README.md in one run, one Markdown table.
 *
 *   deno run -A bench/run.ts [--quick] [--rounds N] [--skip-host] [--skip-vm] [--no-write]
 *     [--diagnose] [--vm-scale N] [--vm-json FILE]
 *
 * Host rows first, with full-size data: bench/fetch.ts (thinimage fetch vs curl from the
 * loopback radosgw, peak RSS on a 1 GiB layer) and bench/tar.ts (validate vs sha256sum, apply
 * vs GNU tar -x on a private tmpfs). Then the rows that need device-mapper, in the qemu VM
 * (bench/vm.ts, scaled fixtures; the VM's numbers are emulated and only compared with
 * baselines measured in the same VM). Each bench alternates its contenders within a round and
 * reports every sample; this file turns them into medians with min-max spread, prints the
 * table, and writes it with a description of the machine to bench/RESULTS.md.
 *
 * --vm-scale N: the VM's fixtures are the real sizes divided by N (default 20).
 * --vm-json FILE: take the VM rows from an earlier bench/vm.ts --json instead of running it.
 * --diagnose: also where the VM's time goes (bench/vm.ts --diagnose; strace under emulation
 * adds about five minutes).
 * --quick: one round each (three for the short tar ones), a smaller layer in the VM, for a
 * look in a few minutes. A section that fails is reported as not measured, with why.
 * @module
 */
import { parseArgs } from "node:util";
import type { Stat, VmResults } from "./vm.ts";
import { diagnosis, summary } from "./vm.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** One line of the table, in bench/README.md's columns. */
export interface Row {
  what: string;
  ours: string;
  against: string;
  ratio: string;
  target: string;
  met: "yes" | "no" | "-";
  data: string;
}

/**
 * Run a bench that prints one JSON document as its last stdout line. Other stdout lines are
 * progress (the VM sends the guest's stderr and stdout down one serial line) and are passed on
 * to our stderr as they come.
 */
async function runJson<T>(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<T> {
  const child = new Deno.Command(cmd, {
    args,
    env,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let last = "";
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === "") continue;
      if (last) console.error(`  ${last}`);
      last = line.trim();
    }
  }
  if (pending.trim()) {
    if (last) console.error(`  ${last}`);
    last = pending.trim();
  }
  const st = await child.status;
  if (!st.success) {
    throw new Error(`${[cmd, ...args].join(" ")} exited ${st.code}: ${last.slice(-300)}`);
  }
  return JSON.parse(last) as T;
}

const f = (x: number, d = 0) => x.toFixed(d);
/** "median (min-max)" of a rate computed from times: the fastest time is the highest rate. */
function rate(bytes: number, s: Stat): string {
  const d = bytes / 1e6 / s.median < 10 ? 2 : 0; // the VM's rates are a few MB/s
  return `${f(bytes / 1e6 / s.median, d)} MB/s (${f(bytes / 1e6 / s.max, d)}-${
    f(bytes / 1e6 / s.min, d)
  })`;
}
function spread(s: Stat, d = 1, unit = ""): string {
  return `${f(s.median, d)}${unit} (${f(s.min, d)}-${f(s.max, d)})`;
}
const MB = (b: number) => `${f(b / 1e6, 1)} MB`;

/** What `bench/fetch.ts --json` prints. */
export interface FetchJson {
  ceilingsMBps: Record<string, number>;
  image: string;
  layers: number;
  bytes: number;
  rounds: number;
  seconds: Record<string, number[]>;
  peakRssMiB: Record<string, number>;
}

/** What `bench/tar.ts --json` prints. */
export interface TarJson {
  layerBytes: number;
  entries: number;
  target: string;
  rounds: number;
  rows: Record<string, { s: number[]; rssKiB: number[] }>;
}

/** The fetch row: thinimage against the faster curl, and the 1 GiB peak RSS. */
export function fetchRows(j: FetchJson): Row[] {
  const ours = summary(j.seconds["thinimage fetch"]);
  const curls = ["curl, one at a time", "curl --parallel-max 2"].map((k) => ({
    k,
    s: summary(j.seconds[k]),
  })).sort((a, b) => a.s.median - b.s.median);
  const best = curls[0];
  const ratio = best.s.median / ours.median;
  const rss = j.peakRssMiB["1GiB"];
  return [{
    what: "fetch from the local S3 server (host)",
    ours: `${rate(j.bytes, ours)}; peak RSS ${f(rss)} MiB on a 1 GiB layer (${
      f(j.peakRssMiB["64MiB"])
    } on 64 MiB)`,
    against: `${best.k}: ${rate(j.bytes, best.s)}`,
    ratio: `${f(ratio, 2)}x`,
    target: ">= 0.9x curl; RSS < 200 MiB",
    met: ratio >= 0.9 && rss < 200 ? "yes" : "no",
    data: `full-size ${j.image} (${j.layers} layers, ${MB(j.bytes)}), ${j.rounds} rounds`,
  }];
}

/** The validate row (the target) and the host apply row (for reference). */
export function tarRows(j: TarJson): Row[] {
  const s = (k: string) => summary(j.rows[k].s);
  const rss = (k: string) => f(Math.max(...j.rows[k].rssKiB) / 1024);
  const data = `${MB(j.layerBytes)} layer of /usr trees, ${j.entries} entries, ${j.rounds} rounds`;
  const v = s("thinimage validate"), sha = s("sha256sum");
  const a = s("thinimage apply --sha256"), tar = s("GNU tar -x");
  return [{
    what: "validate a layer (host)",
    ours: `${rate(j.layerBytes, v)}, ${rss("thinimage validate")} MiB RSS`,
    against: `sha256sum ${rate(j.layerBytes, sha)}`,
    ratio: `${f(sha.median / v.median, 2)}x`,
    target: ">= 1x",
    met: sha.median / v.median >= 1 ? "yes" : "no",
    data,
  }, {
    what: `apply a layer (host, ${j.target}; reference only)`,
    ours: `${rate(j.layerBytes, a)}, ${rss("thinimage apply --sha256")} MiB RSS`,
    against: `GNU tar -x ${rate(j.layerBytes, tar)}`,
    ratio: `${f(tar.median / a.median, 2)}x`,
    target: "(>= 0.8x is for the VM row)",
    met: "-",
    data,
  }];
}

/** The VM rows: apply, cold and warm activate, pool metadata. */
export function vmRows(j: VmResults): Row[] {
  const a = j.apply, c = j.cold, w = j.warm;
  // The product's unpack is pull's one pass (the blob was validated at fetch); the apply
  // command's validate-then-apply is reported beside it.
  const applyRatio = a.tarS.median / a.onePassS.median;
  const coldFaster = c.thinimageS.median < c.naiveS.median;
  const byteShare = c.thinimageBytes / c.naiveBytes;
  const blockShare = c.thinimageDataBytes / c.naiveDataBytes;
  const warmRatio = w.newNameMs.median / w.floorMs.median;
  const vm = `VM (qemu TCG, ${j.cpus} vCPUs, ${j.kernel})`;
  const fixture = `fixtures ${c.fixture}: golang+node+python, ${c.thinimageS.n} rounds`;
  const poolShare = c.thinimageDataBytes / c.uniqueUnpackedBytes;
  return [
    {
      what: `apply a layer into a fresh ext4 thin volume (${vm})`,
      ours: `pull's one pass ${
        rate(a.layerBytes, a.onePassS)
      }; \`thinimage apply\` (validate, then apply) ${rate(a.layerBytes, a.thinimageS)} = ${
        f(a.tarS.median / a.thinimageS.median, 2)
      }x (each incl. sync and a process start: ${f(w.floorMs.median / 1000, 1)} s here)`,
      against: `GNU tar -x ${rate(a.layerBytes, a.tarS)}`,
      ratio: `${f(applyRatio, 2)}x`,
      target: ">= 0.8x",
      met: applyRatio >= 0.8 ? "yes" : "no",
      data: `${MB(a.layerBytes)} tar of ${
        a.trees.join(", ")
      }, ${a.entries} entries, ${a.thinimageS.n} rounds`,
    },
    {
      what: `cold activate of the three images (${vm})`,
      ours: `${spread(c.thinimageS, 1, " s")}; ${MB(c.thinimageBytes)} downloaded; pool data ${
        MB(c.thinimageDataBytes)
      }`,
      against: `naive: ${spread(c.naiveS, 1, " s")}; ${MB(c.naiveBytes)}; pool data ${
        MB(c.naiveDataBytes)
      }`,
      ratio: `speed ${f(c.naiveS.median / c.thinimageS.median, 2)}x naive; bytes ${
        f(byteShare, 2)
      }; blocks ${f(blockShare, 2)}`,
      target: "faster; about half the bytes and blocks",
      met: coldFaster && byteShare <= 0.6 && blockShare <= 0.6 ? "yes" : "no",
      data: `${fixture}; ${f(c.deviceBytes / 2 ** 30)} GiB volumes, ${
        c.blockBytes / 1024
      } KiB blocks`,
    },
    {
      what: `sharing after the three images (${vm})`,
      ours: `downloaded ${MB(c.thinimageBytes)} for ${
        MB(c.uniqueBlobBytes)
      } of distinct layers; pool data ${MB(c.thinimageDataBytes)} for ${
        MB(c.uniqueUnpackedBytes)
      } unpacked in distinct layers`,
      against: `naive sum: ${MB(c.naiveBytes)} downloaded, ${
        MB(c.naiveUnpackedBytes)
      } unpacked (pool data ${MB(c.naiveDataBytes)})`,
      ratio: `downloaded ${f(c.thinimageBytes / c.uniqueBlobBytes, 2)}x unique; pool ${
        f(poolShare, 2)
      }x unique unpacked`,
      target: "downloaded = unique; pool data <= 1.15x unique unpacked",
      met: c.thinimageBytes === c.uniqueBlobBytes && poolShare <= 1.15 ? "yes" : "no",
      data: fixture,
    },
    {
      what: `warm activate of a ready image, default --pull missing (${vm})`,
      ours: `new name ${spread(w.newNameMs, 0, " ms")}, same name ${
        spread(w.sameNameMs, 0, " ms")
      }; ${w.gets} object GETs (${w.requests} S3 requests, listings included${
        w.paths.length ? `: ${[...new Set(w.paths)].join(", ")}` : ""
      })`,
      against: `empty deno run ${spread(w.floorMs, 0, " ms")}`,
      ratio: `${f(warmRatio, 2)}x the floor`,
      target: "<= 2x the floor, no S3 request",
      met: warmRatio <= 2 && w.requests === 0 ? "yes" : "no",
      data: `golang, ${w.floorMs.n} rounds`,
    },
    ...(w.daemonNewNameMs && w.daemonSameNameMs
      ? [{
        what: `warm activate of a ready image, \`thinimage daemon\` serving (${vm})`,
        ours: `new name ${spread(w.daemonNewNameMs, 0, " ms")}, same name ${
          spread(w.daemonSameNameMs, 0, " ms")
        } (the client process; the daemon makes the device)`,
        against: `empty deno run ${spread(w.floorMs, 0, " ms")}`,
        ratio: `${f(w.daemonNewNameMs.median / w.floorMs.median, 2)}x the floor`,
        target: "<= 2x the floor, no S3 request",
        met: (w.daemonNewNameMs.median / w.floorMs.median <= 2 && w.requests === 0
          ? "yes"
          : "no") as Row["met"],
        data: `golang, ${w.daemonNewNameMs.n} rounds`,
      }]
      : []),
    {
      what: `pool metadata used after the three images (${vm})`,
      ours: `${c.thinimageMetaBlocks} blocks of 4 KiB`,
      against: `naive: ${c.naiveMetaBlocks} blocks`,
      ratio: `${f(c.thinimageMetaBlocks / c.naiveMetaBlocks, 2)}`,
      target: "reported",
      met: "-",
      data: fixture,
    },
  ];
}

function notRun(what: string, why: string): Row {
  return {
    what,
    ours: `not measured: ${why}`,
    against: "",
    ratio: "",
    target: "",
    met: "-",
    data: "",
  };
}

/** The results table, as Markdown. */
export function table(rows: Row[]): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  return [
    "| what | this project | against | ratio | target | met? | data |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${[r.what, r.ours, r.against, r.ratio, r.target, r.met, r.data].map(esc).join(" | ")} |`
    ),
  ].join("\n");
}

async function machine(): Promise<string> {
  const cpu = /model name\s*:\s*(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ??
    "unknown CPU";
  const mem = Number(/MemTotal:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))![1]);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  return [
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores; memory ${f(mem / 1024 / 1024, 1)} GiB`,
    `- kernel ${Deno.osRelease()}; deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    `- load average at the start: ${load} (the machine is shared: other VMs and builds run too)`,
    `- date: ${new Date().toISOString()}`,
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      rounds: { type: "string" },
      "skip-host": { type: "boolean" },
      "skip-vm": { type: "boolean" },
      "no-write": { type: "boolean" },
      diagnose: { type: "boolean" },
      "vm-scale": { type: "string" },
      "vm-json": { type: "string" },
    },
  });
  const quick = !!values.quick;
  const rounds = values.rounds ?? (quick ? "1" : "3");
  const started = performance.now();
  const desc = await machine();
  const deno = Deno.execPath();
  const rows: Row[] = [];
  const notes: string[] = [];
  const hostNotes: string[] = [];
  const log = (s: string) => console.error(`bench: ${s}`);

  if (!values["skip-host"]) {
    log("fetch (host, full-size fixtures in the loopback radosgw)");
    try {
      const fj = await runJson<FetchJson>(deno, [
        "run",
        "-A",
        "bench/fetch.ts",
        "--json",
        "--rounds",
        rounds,
      ]);
      rows.push(...fetchRows(fj));
      hostNotes.push(
        "- fetch ceilings, one Deno process, 1 GiB object, MB/s: " +
          Object.entries(fj.ceilingsMBps).map(([k, v]) => `${k} ${f(v)}`).join("; "),
      );
    } catch (e) {
      rows.push(notRun("fetch from the local S3 server (host)", String(e).slice(0, 200)));
    }
    log("validate and apply (host, tmpfs)");
    try {
      const tarRounds = values.rounds ?? (quick ? "3" : "5");
      rows.push(...tarRows(
        await runJson<TarJson>(deno, [
          "run",
          "-A",
          "bench/tar.ts",
          "--json",
          "--rounds",
          tarRounds,
        ]),
      ));
    } catch (e) {
      rows.push(notRun("validate / apply a layer (host)", String(e).slice(0, 200)));
    }
  }
  let vmMinutes: string | undefined;
  if (values["vm-json"]) {
    // The VM rows of an earlier `vm.sh -- deno run -A bench/vm.ts --json` (they take the
    // longest; the host rows can then be rerun alone).
    const vm = JSON.parse(await Deno.readTextFile(values["vm-json"])) as VmResults;
    vmMinutes = vm.seconds === undefined ? undefined : f(vm.seconds / 60, 1);
    rows.push(...vmRows(vm));
    if (vm.diagnose) notes.push(diagnosis(vm.diagnose));
  } else if (!values["skip-vm"]) {
    log("device rows in the VM (one VM; minutes under emulation)");
    try {
      const args = [
        "scripts/vm.sh",
        "--",
        "deno",
        "run",
        "-A",
        "--no-check",
        "bench/vm.ts",
        "--json",
      ];
      if (values.diagnose) args.push("--diagnose");
      if (quick) args.push("--quick");
      if (values.rounds) args.push("--rounds", values.rounds);
      // vm.sh's default 15 minutes is too short for every VM row under load.
      const vm = await runJson<VmResults>("/usr/bin/bash", args, {
        VM_TIMEOUT: Deno.env.get("VM_TIMEOUT") ?? "3600",
        // 1/20 of the real sizes (74 MB of distinct unpacked layers): big enough that a
        // filesystem's fixed costs do not decide the sharing ratio, small enough for TCG.
        THINIMAGE_FIXTURES_SCALE: values["vm-scale"] ?? "20",
      });
      rows.push(...vmRows(vm));
      if (vm.diagnose) notes.push(diagnosis(vm.diagnose));
    } catch (e) {
      rows.push(notRun("apply / cold / warm / metadata (VM)", String(e).slice(0, 300)));
    }
  }
  const minutes = (performance.now() - started) / 60000;
  const md = table(rows);
  console.log(md);
  if (values["no-write"]) return;
  const doc = [
    "# Benchmark results",
    "",
    `Written by \`deno task bench${quick ? " --quick" : ""}\` (bench/run.ts) in ${
      f(minutes, 1)
    } minutes${
      values["vm-json"]
        ? `; the VM rows come from an earlier \`bench/vm.ts --json\` run (--vm-json ${
          values["vm-json"]
        }, ${vmMinutes ?? "?"} minutes in the VM)`
        : ""
    }.`,
    "Medians, (min-max) over the rounds; each bench alternates its contenders within a round. Host rows use full-size data on the host; VM rows run in qemu without KVM (TCG),",
    "where a process start costs seconds and I/O is slow: their ratios compare contenders measured",
    "in the same VM, and their absolute numbers say nothing about real hardware.",
    "",
    "## Machine",
    "",
    desc,
    "",
    "## Results",
    "",
    md,
    "",
    ...(hostNotes.length ? ["## Where the time goes on the host", "", ...hostNotes, ""] : []),
    ...(notes.length
      ? ["## Where the time goes in the VM (bench/vm.ts --diagnose)", "", ...notes, ""]
      : []),
  ].join("\n");
  await Deno.writeTextFile(`${ROOT}/bench/RESULTS.md`, doc);
  log(`wrote bench/RESULTS.md (${f(minutes, 1)} min)`);
}

if (import.meta.main) await main();
