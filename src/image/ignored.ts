/**
 * The one line that reports the keys a listing ignored. Apart from the manifest module, which
 * hashes with node:crypto: a pull that never lists (a warm activation) loads this, not that.
 *
 * @example
 * ```ts
 * import { describeIgnored } from "./ignored.ts";
 * describeIgnored({ image: "app", ignored: { count: 1, examples: ["images/app/README"] } });
 * // 'app: ignored 1 key(s) that are not layers ("images/app/README")'
 * ```
 * @module
 */
import type { Manifest } from "./manifest.ts";

/** One line about the keys a listing ignored, or undefined when there were none. */
export function describeIgnored(m: Pick<Manifest, "image" | "ignored">): string | undefined {
  const { count, examples } = m.ignored ?? { count: 0, examples: [] };
  if (count === 0) return undefined;
  // Keys may be 1,024 bytes long: a summary line names the start of each.
  const short = (k: string) => JSON.stringify(k.length > 80 ? `${k.slice(0, 77)}...` : k);
  return `${m.image}: ignored ${count} key(s) that are not layers (${
    examples.map(short).join(", ")
  }${count > examples.length ? ", ..." : ""})`;
}
