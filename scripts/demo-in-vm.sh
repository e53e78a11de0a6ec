#!/usr/bin/env bash
# Runs inside the VM (see scripts/demo.sh). Everything it makes dies with the VM.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/s3-server.sh env)"
export THINIMAGE_STATE_DIR=/var/lib/thinimage THINIMAGE_S3_ENDPOINT=$THINIMAGE_TEST_S3_ENDPOINT
export THINIMAGE_BUCKET=$THINIMAGE_TEST_BUCKET
mkdir -p "$THINIMAGE_STATE_DIR" /var/tmp/refpool

echo "== a thin pool, as the reference setup makes it"
fallocate -l 1M /var/tmp/refpool/pool_meta
fallocate -l 2G /var/tmp/refpool/pool_data
META=$(losetup -f --show /var/tmp/refpool/pool_meta)
DATA=$(losetup -f --show /var/tmp/refpool/pool_data)
dmsetup create --verifyudev pool --table "0 4194304 thin-pool $META $DATA 2048 32768"
# The shipped task reaches the public bucket only: the demo grants its loopback server itself,
# with the same flags otherwise (as 'deno task install --endpoint URL' would).
FLAGS=$(deno eval "import { permissionFlags } from '$PWD/src/cli/permissions.ts';
  console.log(permissionFlags({ netHosts: [new URL('$THINIMAGE_S3_ENDPOINT').host] }).join(' '))")
thinimage() { deno run -q $FLAGS src/main.ts "$@"; }
thinimage pool init --pool pool

run() {
  echo "\$ thinimage $*"
  local t0; t0=$(date +%s%N)
  thinimage "$@"
  echo "  ($(( ($(date +%s%N) - t0) / 1000000 )) ms, under software emulation)"
}
for pass in 1 2; do
  echo "== pass $pass: activate golang, node, python"
  for img in golang node python; do run activate "$img"; done
  run ls
done
echo "== pass 3: pull each image: nothing is downloaded or unpacked again"
for img in golang node python; do run pull "$img"; done
echo "== /etc/os-release of the activated golang root filesystem"
mkdir -p /var/tmp/look
mount -o ro,noload /dev/mapper/thinimage-act-golang /var/tmp/look
cat /var/tmp/look/etc/os-release
umount /var/tmp/look
