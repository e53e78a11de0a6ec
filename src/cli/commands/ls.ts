/**
 * `thinimage ls`: images with their state, layers, own and shared bytes; activations with
 * their devices. Reads the state directory only: no network, no device tools.
 * @module
 */
import type { Command } from "../command.ts";
import { formatBytes } from "../../log.ts";
import { StateDir } from "../../state_dir.ts";
import { Catalog } from "../../store/catalog.ts";
import { DeviceRecords } from "../../devmapper/records.ts";
import { mapperPath } from "../../names.ts";
import { imageUsage } from "../../image/plan.ts";

/** The `--json` document of `ls`. */
export interface LsResult {
  images: {
    name: string;
    state: string;
    manifest: string;
    layers: number;
    bytes: number;
    ownBytes: number;
    sharedBytes: number;
    topChain: string | null;
    error: string | null;
  }[];
  activations: {
    name: string;
    image: string;
    manifest: string;
    device: string;
    path: string;
    thinId: number | null;
    state: string | null;
  }[];
}

/** Build the `ls` document from a catalogue and the device records. */
export function listing(catalog: Catalog, devices: DeviceRecords): LsResult {
  const images = catalog.listImages();
  const chains = new Map(catalog.listChains().map((c) => [c.chainId, c]));
  const usage = new Map(
    imageUsage(images.map((i) => ({
      name: i.name,
      layers: i.layers.map((l) => ({
        sha256: l.sha256,
        chainId: l.chainId,
        size: l.size,
        unpackedBytes: l.chainId ? chains.get(l.chainId)?.unpackedBytes : null,
      })),
    }))).map((u) => [u.name, u]),
  );
  return {
    images: images.map((i) => ({
      name: i.name,
      state: i.state,
      manifest: i.manifestDigest,
      layers: i.layers.length,
      bytes: i.layers.reduce((n, l) => n + l.size, 0),
      ownBytes: usage.get(i.name)!.ownBytes,
      sharedBytes: usage.get(i.name)!.sharedBytes,
      topChain: i.topChain,
      error: i.error,
    })),
    activations: catalog.listActivations().map((a) => {
      const d = devices.device(a.device);
      return {
        name: a.name,
        image: a.image,
        manifest: a.manifestDigest,
        device: a.device,
        path: mapperPath(a.device),
        thinId: d?.thinId ?? null,
        state: d?.state ?? null,
      };
    }),
  };
}

function render(r: LsResult): string {
  const lines = ["IMAGE            STATE    LAYERS  SIZE        OWN         SHARED"];
  for (const i of r.images) {
    lines.push(
      `${i.name.padEnd(16)} ${i.state.padEnd(8)} ${String(i.layers).padStart(6)}  ${
        formatBytes(i.bytes).padEnd(11)
      } ${formatBytes(i.ownBytes).padEnd(11)} ${formatBytes(i.sharedBytes)}${
        i.error ? `  (${i.error})` : ""
      }`,
    );
  }
  if (r.images.length === 0) lines.push("(no images)");
  lines.push("", "ACTIVATION       IMAGE            THIN ID  DEVICE");
  for (const a of r.activations) {
    lines.push(
      `${a.name.padEnd(16)} ${a.image.padEnd(16)} ${
        String(a.thinId ?? "-").padStart(7)
      }  ${a.path}`,
    );
  }
  if (r.activations.length === 0) lines.push("(no activations)");
  lines.push("", `${r.images.length} images, ${r.activations.length} activations`);
  return lines.join("\n");
}

const ls: Command = {
  name: "ls",
  summary: "list images (state, layers, own and shared bytes) and activations",
  usage: "thinimage ls [--json]",
  options: {},
  // write: SQLite needs the WAL's shared-memory file even to read.
  keeps: ["read", "write", "env"],
  run(ctx) {
    const dir = new StateDir(ctx.stateDir);
    let doc: LsResult = { images: [], activations: [] };
    if (dir.hasDatabase()) {
      const store = dir.openStore();
      try {
        doc = listing(new Catalog(store), new DeviceRecords(store));
      } finally {
        store.close();
      }
    }
    ctx.result(doc, render);
  },
};
export default ls;
