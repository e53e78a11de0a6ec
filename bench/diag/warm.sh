#!/usr/bin/env bash
# Inside the VM: two revisions' warm activations of a pulled image, alternated in one VM with
# an empty `deno run` (the floor) beside them; compare.sh without its cold rows, for when the
# machine is too slow for three cold activations per round.
#   bash scripts/vm.sh -- bash bench/diag/warm.sh REV_A REV_B [ROUNDS]
# Each revision gets a state directory and pool with golang pulled once (not timed); then each
# round times, per revision, `activate golang --name wN` (a new name: under the default
# pull policy, missing, no listing; before it, a listing and the S3 SDK) and the same name again. Every
# request goes through a counting proxy. Prints one line per measurement, then medians.
# A revision written REV+daemon is REV with `thinimage daemon` serving its state directory
# (`warm.sh HEAD HEAD+daemon 5`: the same code with and without a daemon).
set -euo pipefail
cd "$(dirname "$0")/../.."
A=${1:?usage: warm.sh REV_A REV_B [ROUNDS]}
B=${2:?usage: warm.sh REV_A REV_B [ROUNDS]}
ROUNDS=${3:-3}
eval "$(bash scripts/s3-server.sh env)"
W=$(mktemp -d /var/tmp/thinimage-warm-XXXX)
for rev in "$A" "$B"; do
  mkdir -p "$W/app-$rev"
  git archive "${rev%+daemon}" src deno.json deno.lock | tar -x -C "$W/app-$rev"
  deno run -A "$W/app-$rev/src/main.ts" --help >/dev/null 2>&1 || true
done
: >"$W/empty.ts"
# Requests are counted by a proxy in front of the S3 server: one line per request.
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
DAEMONS=
trap 'kill $PROXY $DAEMONS 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:7481/ && break; sleep 0.2; done
# Each revision runs with its own launch flags (src/cli/permissions.ts), as its launcher would.
flags() {
  deno eval "import { permissionFlags } from '$W/app-$1/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7481'], stateDir: '$W/state-$1' }).join(' '))"
}
declare -A FLAGS LABEL
# Names for devices and pools (a revision may hold characters a name may not).
LABEL[$A]=a$$
LABEL[$B]=b$$
for rev in "$A" "$B"; do FLAGS[$rev]=$(flags "$rev"); done
export THINIMAGE_S3_ENDPOINT=http://127.0.0.1:7481 THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
reqs() { wc -l <"$W/requests.log" 2>/dev/null || echo 0; }
for rev in "$A" "$B"; do
  d=$W/state-$rev; mkdir -p "$d"
  deno run --no-check ${FLAGS[$rev]} "$W/app-$rev/src/main.ts" --state-dir "$d" pool init \
    --name "thinimage-w${LABEL[$rev]}" --data-size 2G >/dev/null
  deno run --no-check ${FLAGS[$rev]} "$W/app-$rev/src/main.ts" --state-dir "$d" pull golang >/dev/null
  if [ "$rev" != "${rev%+daemon}" ]; then
    deno run --no-check ${FLAGS[$rev]} "$W/app-$rev/src/main.ts" --state-dir "$d" daemon \
      2>"$W/daemon-$rev.log" &
    DAEMONS="$DAEMONS $!"
    for _ in $(seq 1 300); do grep -q "serving " "$W/daemon-$rev.log" && break; sleep 0.2; done
  fi
done
RESULTS=$W/results.txt
for r in $(seq 1 "$ROUNDS"); do
  order="$A $B"; [ $((r % 2)) = 0 ] && order="$B $A"
  for rev in $order; do
    cli() { deno run --no-check ${FLAGS[$rev]} "$W/app-$rev/src/main.ts" --state-dir "$W/state-$rev" "$@"; }
    # Device names are the host's: each revision's activations get their own names.
    name=w$r-${LABEL[$rev]}
    before=$(reqs)
    echo "$rev new $(ms cli activate golang --name "$name" --json)" | tee -a "$RESULTS"
    echo "$rev new-requests $(($(reqs) - before))" | tee -a "$RESULTS"
    echo "$rev same $(ms cli activate golang --name "$name" --json)" | tee -a "$RESULTS"
  done
  echo "floor floor $(ms deno run "$W/empty.ts")" | tee -a "$RESULTS"
done
for log in "$W"/daemon-*.log; do [ -e "$log" ] && { echo "$log:"; cat "$log"; }; done
echo "medians (ms):"
for rev in "$A" "$B" floor; do
  line="$rev"
  for what in new new-requests same floor; do
    m=$(awk -v r="$rev" -v w="$what" '$1 == r && $2 == w {print $3}' "$RESULTS" | sort -n |
      awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    [ -n "$m" ] && line="$line $what $m"
  done
  echo "$line"
done
