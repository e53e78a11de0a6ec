#!/usr/bin/env bash
# Inside the VM: where a warm activation's time goes, for one revision (default: the work tree).
#   bash scripts/vm.sh -- bash bench/diag/warm_phases.sh [REV] [ROUNDS]
# Pulls golang once (not timed), then per round times: an empty `deno run` (the floor); the
# CLI's --version (frame only); activating an existing name; a new name; the same new name
# under --no-code-cache; importing the new-name path's modules without running them; one
# dmsetup process from bash. Then once each, not timed: strace of a new name (programs
# started, files opened, with time stamps) and a --cpu-prof of a new name. Output under
# .cache/diag/warm_phases/.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=${1:-}
ROUNDS=${2:-3}
OUT=$PWD/.cache/diag/warm_phases
rm -rf "$OUT"; mkdir -p "$OUT"
eval "$(bash scripts/s3-server.sh env)"
W=$(mktemp -d /var/tmp/thinimage-phases-XXXX)
APP=$W/app
mkdir -p "$APP"
if [ -n "$REV" ]; then git archive "$REV" src deno.json deno.lock | tar -x -C "$APP"
else cp -r src deno.json deno.lock "$APP/"; fi
: >"$W/empty.ts"
# Deno's Node modules: the first one loads the Node compatibility layer.
echo 'import "node:sqlite";' >"$W/node_sqlite.ts"
echo 'import "node:sqlite"; import "node:path";' >"$W/node_path.ts"
echo 'import "node:sqlite"; import "node:path"; import "node:util";' >"$W/node_util.ts"
echo 'import "node:sqlite"; import "node:path"; import "node:crypto";' >"$W/node_crypto.ts"
cat >"$W/modules.ts" <<X
await import("$APP/src/main.ts");
await import("$APP/src/cli/commands/activate.ts");
await import("$APP/src/agent/runtime.ts");
await import("$APP/src/devmapper/pool.ts");
await import("$APP/src/devmapper/thin.ts");
X
FLAGS=$(deno eval "import { permissionFlags } from '$APP/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7480'] }).join(' '))")
export THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
D=$W/state
mkdir -p "$D"
cli() { deno run --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" "$@"; }
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
cli pool init --name thinimage-phases --data-size 2G >/dev/null
cli pull golang >/dev/null
cli activate golang --name warm0 --json >/dev/null # compiles every module of the path once
deno run -A "$W/modules.ts" >/dev/null
for n in node_sqlite node_path node_util node_crypto; do deno run -A "$W/$n.ts"; done
R=$OUT/results.txt
for r in $(seq 1 "$ROUNDS"); do
  echo "floor $(ms deno run "$W/empty.ts")" | tee -a "$R"
  echo "version $(ms cli --version)" | tee -a "$R"
  echo "same $(ms cli activate golang --name warm0 --json)" | tee -a "$R"
  echo "new $(ms cli activate golang --name "n$r" --json)" | tee -a "$R"
  echo "new-no-code-cache $(ms deno run --no-code-cache --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name "c$r" --json)" | tee -a "$R"
  echo "modules $(ms deno run -A "$W/modules.ts")" | tee -a "$R"
  for n in node_sqlite node_path node_util node_crypto; do
    echo "$n $(ms deno run -A "$W/$n.ts")" | tee -a "$R"
  done
  echo "dmsetup $(ms /usr/sbin/dmsetup table thinimage-phases)" | tee -a "$R"
done
strace -f -tt -e trace=execve,openat,exit_group -o "$OUT/new.strace" \
  deno run --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name s1 --json >/dev/null
echo "programs started by a new name:"
grep 'execve(' "$OUT/new.strace" | grep -v ENOENT | sed -E 's/.*execve\("([^"]+)", \[[^,]*(, "[^"]*")?(, "[^"]*")?.*/  \1\2\3/' | sort | uniq -c
(cd "$OUT" && deno run --cpu-prof --cpu-prof-dir="$OUT" --no-check $FLAGS "$APP/src/main.ts" --state-dir "$D" activate golang --name p1 --json >/dev/null)
echo "medians (ms):"
for what in floor version same new new-no-code-cache modules node_sqlite node_path node_util node_crypto dmsetup; do
  m=$(awk -v w="$what" '$1 == w {print $2}' "$R" | sort -n |
    awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
  echo "  $what $m"
done
