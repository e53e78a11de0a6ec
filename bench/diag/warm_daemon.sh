#!/usr/bin/env bash
# Inside the VM: warm activations of a pulled image from this tree, in a state directory with no
# daemon and in one that `thinimage daemon` serves, alternated in one VM with an empty
# `deno run` (the floor) beside them.
#   bash scripts/vm.sh -- bash bench/diag/warm_daemon.sh [ROUNDS]
# Each state directory gets a pool and golang pulled once (not timed); each round times, per
# directory, `activate golang --name wN` (a new name; the default pull policy, missing) and the
# same name again. Every S3 request goes through a counting proxy. Prints one line per
# measurement, then medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
eval "$(bash scripts/s3-server.sh env)"
W=$(mktemp -d /var/tmp/thinimage-warmd-XXXX)
mkdir -p "$W/app"
cp -r src deno.json deno.lock "$W/app/"
deno run -A "$W/app/src/main.ts" --help >/dev/null 2>&1 || true
: >"$W/empty.ts"
cat >"$W/proxy.ts" <<X
import { startFaultProxy } from "$PWD/scripts/fault-proxy.ts";
const proxy = startFaultProxy({ upstream: "$THINIMAGE_TEST_S3_ENDPOINT", port: 7481 });
let seen = 0;
setInterval(() => {
  for (; seen < proxy.requests.length; seen++) {
    const q = proxy.requests[seen];
    Deno.writeTextFileSync("$W/requests.log", \`\${q.method} \${q.path}\\n\`, { append: true });
  }
}, 20);
X
touch "$W/requests.log"
deno run --allow-net=127.0.0.1 --allow-read --allow-write="$W" "$W/proxy.ts" >/dev/null 2>&1 &
PROXY=$!
DAEMON=
trap 'kill $PROXY $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:7481/ && break; sleep 0.2; done
flags() {
  deno eval "import { permissionFlags } from '$W/app/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7481'], stateDir: '$1' }).join(' '))"
}
export THINIMAGE_S3_ENDPOINT=http://127.0.0.1:7481 THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
reqs() { wc -l <"$W/requests.log" 2>/dev/null || echo 0; }
declare -A FLAGS
for kind in alone daemon; do
  d=$W/state-$kind; mkdir -p "$d"
  FLAGS[$kind]=$(flags "$d")
  deno run --no-check ${FLAGS[$kind]} "$W/app/src/main.ts" --state-dir "$d" pool init \
    --name "thinimage-wd-$kind" --data-size 2G >/dev/null
  deno run --no-check ${FLAGS[$kind]} "$W/app/src/main.ts" --state-dir "$d" pull golang >/dev/null
done
deno run --no-check ${FLAGS[daemon]} "$W/app/src/main.ts" --state-dir "$W/state-daemon" daemon \
  2>"$W/daemon.log" &
DAEMON=$!
for _ in $(seq 1 100); do [ -S "$W/state-daemon/daemon.sock" ] && break; sleep 0.2; done
RESULTS=$W/results.txt
for r in $(seq 1 "$ROUNDS"); do
  order="alone daemon"; [ $((r % 2)) = 0 ] && order="daemon alone"
  for kind in $order; do
    cli() { deno run --no-check ${FLAGS[$kind]} "$W/app/src/main.ts" --state-dir "$W/state-$kind" "$@"; }
    name=w$r-$kind
    before=$(reqs)
    echo "$kind new $(ms cli activate golang --name "$name" --json)" | tee -a "$RESULTS"
    echo "$kind new-requests $(($(reqs) - before))" | tee -a "$RESULTS"
    echo "$kind same $(ms cli activate golang --name "$name" --json)" | tee -a "$RESULTS"
  done
  echo "floor floor $(ms deno run "$W/empty.ts")" | tee -a "$RESULTS"
done
echo "daemon's log:"; cat "$W/daemon.log"
echo "medians (ms):"
for kind in alone daemon floor; do
  line="$kind"
  for what in new new-requests same floor; do
    m=$(awk -v r="$kind" -v w="$what" '$1 == r && $2 == w {print $3}' "$RESULTS" | sort -n |
      awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    [ -n "$m" ] && line="$line $what $m"
  done
  echo "$line"
done
