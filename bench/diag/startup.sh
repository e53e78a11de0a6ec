#!/usr/bin/env bash
# Inside the VM (bash scripts/vm.sh -- bash bench/diag/startup.sh): what a CLI start costs
# before any work, from a copy on the guest's disk as bench/vm.ts runs it. Three rounds of:
# an empty `deno run` (the warm row's floor); loading the modules a new activation loads
# (CLI, agent, engine, machines, devices) without running anything; the same plus the S3
# SDK, which every activation that lists the bucket loads; one dmsetup process.
set -euo pipefail
cd "$(dirname "$0")/../.."
APP=$(mktemp -d /var/tmp/thinimage-app-XXXX)
cp -r src deno.json deno.lock "$APP/"
: >"$APP/empty.ts"
cat >"$APP/modules.ts" <<'X'
await import("./src/main.ts");
await import("./src/cli/commands/activate.ts");
await import("./src/agent/runtime.ts");
X
cat >"$APP/sdk.ts" <<'X'
await import("./modules.ts");
await import("./src/retrieve/source.ts");
X
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; echo $((($(date +%s%N) - s) / 1000000)); }
deno run -A "$APP/sdk.ts" # the first run of a new copy compiles it: not counted
for r in 1 2 3; do
  echo "round $r: empty deno run $(ms deno run "$APP/empty.ts") ms;" \
    "activation's modules $(ms deno run -A "$APP/modules.ts") ms;" \
    "the same + S3 SDK $(ms deno run -A "$APP/sdk.ts") ms;" \
    "dmsetup version $(ms /usr/sbin/dmsetup version) ms"
done
