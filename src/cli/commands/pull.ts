/**
 * `thinimage pull IMAGE`: make the image ready (every layer fetched, validated and unpacked
 * into its chain device), reusing whatever is already there.
 * @module
 */
import type { Command } from "../command.ts";
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  AGENT_USAGE,
  checkNetPermission,
  preloadS3Client,
  withAgent,
} from "../agent_options.ts";
import { formatBytes } from "../../log.ts";
import { checkName } from "../../names.ts";
import type { PullResponse } from "../../machines/pull.ts";

/** The `--json` document of `pull`. */
export interface PullResult {
  image: string;
  manifest: string;
  topChain: string;
  offline: boolean;
  layers: {
    key: string;
    size: number;
    sha256: string;
    chainId: string;
    downloaded: boolean;
    unpacked: boolean;
  }[];
}

/** Shape a pull's response for output. */
export function pullResult(r: PullResponse): PullResult {
  return {
    image: r.image,
    manifest: r.manifestDigest,
    topChain: r.topChain!,
    offline: Boolean(r.offline),
    layers: r.layers.map((l) => ({
      key: l.key,
      size: l.size,
      sha256: l.sha256!,
      chainId: l.chainId!,
      downloaded: Boolean(l.downloaded),
      unpacked: Boolean(l.unpacked),
    })),
  };
}

/** One summary line of a pull. */
export function pullSummary(p: PullResult): string {
  const got = p.layers.filter((l) => l.downloaded);
  const made = p.layers.filter((l) => l.unpacked);
  return `${p.image}: ready, ${p.layers.length} layers; downloaded ${got.length} (${
    formatBytes(got.reduce((n, l) => n + l.size, 0))
  }), unpacked ${made.length}${p.offline ? " (offline: local copy)" : ""}`;
}

const pull: Command = {
  name: "pull",
  summary: "fetch, validate and unpack an image into thin chain devices",
  usage: `thinimage pull IMAGE ${AGENT_USAGE}\n${AGENT_HELP}`,
  options: { ...AGENT_OPTIONS },
  positionals: [1, 1],
  keeps: ["read", "write", "net", "env", "run", "sys", "ffi"],
  async run(ctx, { values, positionals }) {
    const image = checkName("image", positionals[0], "IMAGE");
    if (!values.offline) checkNetPermission(values);
    const res = await withAgent(ctx, values, async (agent) => {
      // A pull that cannot succeed here fails before its first S3 request.
      if (!values.offline) preloadS3Client();
      await agent.checkPool();
      // As a child run is: --no-wait refuses (75) to wait on another process's pull.
      return await agent.effects.child(agent.machines.pull, image, { image }, ctx.signal);
    });
    ctx.log.endProgress();
    ctx.result(pullResult(res), pullSummary);
  },
};
export default pull;
