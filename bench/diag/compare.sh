#!/usr/bin/env bash
# Inside the VM: two revisions' cold and warm activations, alternated in one VM, so that the
# machine's drift (other tenants, emulation) falls on both alike; one bench/vm.ts run against
# another an hour later compares the weather as much as the code.
#   THINIMAGE_FIXTURES_SCALE=20 bash scripts/vm.sh -- bash bench/diag/compare.sh REV_A REV_B [ROUNDS]
# Each round and revision: a fresh state directory and pool, `activate` golang, node, python
# (timed together: the cold row), then a new activation name and the same name again (warm),
# and an empty `deno run` beside them (the floor). Prints one line per measurement, then medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=${1:?usage: compare.sh REV_A REV_B [ROUNDS]}
B=${2:?usage: compare.sh REV_A REV_B [ROUNDS]}
ROUNDS=${3:-2}
eval "$(bash scripts/s3-server.sh env)"
W=$(mktemp -d /var/tmp/thinimage-compare-XXXX)
for rev in "$A" "$B"; do
  mkdir -p "$W/app-$rev"
  git archive "$rev" src deno.json deno.lock | tar -x -C "$W/app-$rev"
  # The first start of a copy compiles its modules: not part of any measurement.
  deno run -A "$W/app-$rev/src/main.ts" --help >/dev/null 2>&1 || true
done
: >"$W/empty.ts"
FLAGS=$(deno eval "import { permissionFlags } from '$PWD/src/cli/permissions.ts'; console.log(permissionFlags({ netHosts: ['127.0.0.1:7480'] }).join(' '))")
export THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; return 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
RESULTS=$W/results.txt
for r in $(seq 1 "$ROUNDS"); do
  order="$A $B"; [ $((r % 2)) = 0 ] && order="$B $A"
  for rev in $order; do
    cli() { deno run --no-check $FLAGS "$W/app-$rev/src/main.ts" "$@"; }
    export THINIMAGE_STATE_DIR=$W/state-$rev-$r
    mkdir -p "$THINIMAGE_STATE_DIR"
    cli pool init --name "thinimage-c$r${rev:0:4}" --data-size 6G >/dev/null 2>&1
    s=$(date +%s%N)
    for img in golang node python; do cli activate $img --json >/dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; exit 1; }; done
    echo "$rev cold $((($(date +%s%N) - s) / 1000000))" | tee -a "$RESULTS"
    echo "$rev new $(ms cli activate golang --name w$r --json)" | tee -a "$RESULTS"
    echo "$rev same $(ms cli activate golang --json)" | tee -a "$RESULTS"
    echo "$rev floor $(ms deno run "$W/empty.ts")" | tee -a "$RESULTS"
    # Device names are the host's: the other revision's activations must not find these live.
    for n in golang node python "w$r"; do cli deactivate "$n" >/dev/null 2>&1; done
  done
done
echo "medians (ms):"
for rev in "$A" "$B"; do
  line="$rev"
  for what in cold new same floor; do
    m=$(awk -v r="$rev" -v w="$what" '$1 == r && $2 == w {print $3}' "$RESULTS" | sort -n |
      awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    line="$line $what $m"
  done
  echo "$line"
done
