/**
 * The permission flags of the device and end-to-end tests in the VM (scripts/test-in-vm.sh):
 * the product's own, from src/cli/permissions.ts, so a code path that works only with broader
 * grants fails there as it would on a host (one did: a stat of /dev/mapper that Deno allows
 * only under --allow-all). Added, for the tests' own needs only: the programs they start
 * besides the device tools (deno for the CLI, bash for the S3 server script, GNU tar for the
 * reference trees, fallocate and e2fsck), and loopback on any port (the S3 server and the
 * fault proxy).
 *
 * usage: deno run --allow-read --allow-env scripts/vm-test-flags.ts   # prints one flag a line
 * @module
 */
import { permissionFlags } from "../src/cli/permissions.ts";

/** Programs the tests run themselves, by absolute path. */
export const TEST_PROGRAMS = [
  "/usr/bin/bash",
  "/usr/bin/tar",
  "/usr/bin/fallocate",
  "/usr/sbin/e2fsck",
];

/** The flags, in the order `deno test` takes them. */
export function vmTestFlags(): string[] {
  return permissionFlags({ netHosts: ["127.0.0.1"] }).map((f) =>
    f.startsWith("--allow-run=") ? `${f},${[Deno.execPath(), ...TEST_PROGRAMS].join(",")}` : f
  );
}

if (import.meta.main) console.log(vmTestFlags().join("\n"));
