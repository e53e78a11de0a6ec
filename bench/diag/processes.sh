#!/usr/bin/env bash
# Inside the VM (THINIMAGE_FIXTURES_SCALE=20 bash scripts/vm.sh -- bash bench/diag/processes.sh):
# the programs a cold activation of golang, then of node, then a warm one under a new name start,
# counted from `strace -f -e trace=execve` (strace slows everything: count, do not time). Writes
# .cache/diag/processes/ and prints the counts.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$PWD/.cache/diag/processes
mkdir -p "$OUT"
eval "$(bash scripts/s3-server.sh env)"
export THINIMAGE_STATE_DIR=/var/tmp/thinimage-processes THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT \
  THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
mkdir -p "$THINIMAGE_STATE_DIR"
APP=$(mktemp -d /var/tmp/thinimage-app-XXXX)
cp -r src deno.json deno.lock "$APP/"
FLAGS=$(deno eval "import { permissionFlags } from '$PWD/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7480'] }).join(' '))")
cli() { deno run --no-check $FLAGS "$APP/src/main.ts" "$@"; }
cli pool init --name thinimage-processes --data-size 6G >/dev/null 2>&1
run() { # run LABEL ARGS...
  local label=$1; shift
  strace -f -e trace=execve -o "$OUT/$label.strace" deno run --no-check $FLAGS "$APP/src/main.ts" "$@" \
    >/dev/null 2>"$OUT/$label.log"
  echo "$label: $(grep 'execve(' "$OUT/$label.strace" | grep -v ENOENT | grep -vc '/deno"') programs started"
  grep 'execve(' "$OUT/$label.strace" | grep -v ENOENT | grep -v '/deno"' |
    sed -E 's/.*execve\("([^"]+)", \[[^,]*, "([^"]*)".*/  \1 \2/' | sort | uniq -c | sort -rn
}
run cold-golang activate golang --json
run cold-node activate node --json
run warm-new-name activate golang --name w1 --json
