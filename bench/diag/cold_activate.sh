#!/usr/bin/env bash
# Inside the VM (THINIMAGE_FIXTURES_SCALE=20 bash scripts/vm.sh -- bash bench/diag/cold_activate.sh):
# the three fixture images activated one after the other with JSON logs (per-run timestamps),
# warm activations timed, then pool usage and each thin device's exclusive and shared blocks
# (thin_ls on a metadata snapshot). Writes .cache/diag/sSCALE/. Everything else dies with the VM.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$PWD/.cache/diag/s${THINIMAGE_FIXTURES_SCALE:-500}
mkdir -p $OUT
t0=$(date +%s.%N)
eval "$(bash scripts/s3-server.sh env)"
echo "s3 ready in $(echo "$(date +%s.%N) - $t0" | bc) s"
export THINIMAGE_STATE_DIR=/var/tmp/st THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
mkdir -p $THINIMAGE_STATE_DIR
deno task -q thinimage pool init --name thinimage-diag --data-size 6G
for img in golang node python; do
  s=$(date +%s.%N)
  deno task -q thinimage activate $img --json --verbose --log-format json > $OUT/act-$img.json 2> $OUT/act-$img.log
  echo "activate $img: $(echo "$(date +%s.%N) - $s" | bc) s"
done
s=$(date +%s.%N); deno task -q thinimage activate golang --json >/dev/null; echo "warm same: $(echo "$(date +%s.%N) - $s" | bc) s"
s=$(date +%s.%N); deno task -q thinimage activate golang --name w1 --json >/dev/null; echo "warm new: $(echo "$(date +%s.%N) - $s" | bc) s"
s=$(date +%s.%N); deno task -q thinimage activate golang --offline --json >/dev/null; echo "warm offline: $(echo "$(date +%s.%N) - $s" | bc) s"
s=$(date +%s.%N); deno run /dev/null 2>/dev/null || true; echo "deno floor: $(echo "$(date +%s.%N) - $s" | bc) s"
deno task -q thinimage pool status --json > $OUT/pool.json
deno task -q thinimage ls --json > $OUT/ls.json
deno task -q thinimage history --limit 200 --json > $OUT/history.json || true
POOL=thinimage-diag
META=$(dmsetup table $POOL | awk '{print $4}')
dmsetup message $POOL 0 reserve_metadata_snap
MDEV=/dev/$(grep DEVNAME /sys/dev/block/$META/uevent | cut -d= -f2); thin_ls --metadata-snap -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS $MDEV > $OUT/thin_ls.txt 2>&1 || true
dmsetup message $POOL 0 release_metadata_snap
dmsetup ls > $OUT/dmsetup_ls.txt
dmsetup status $POOL
cat $OUT/thin_ls.txt
