#!/usr/bin/env bash
# test-in-vm.sh [deno test args...]  The tests that need a real kernel (device-mapper, loop,
# mounts): everything under tests/vm/. Runs inside the VM: `bash scripts/vm.sh -- bash
# scripts/test-in-vm.sh`, or `deno task test:vm`. Type-checking happens on the host
# (`deno task check`): under software emulation it is 20x slower, hence --no-check.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /dev/mapper/control ]; then
  echo "test-in-vm.sh: this kernel has no device-mapper; run it through scripts/vm.sh" >&2
  exit 1
fi
start=$(date +%s)
rc=0
NO_COLOR=1 deno test --no-check -A "$@" tests/vm/ || rc=$?
echo "test-in-vm.sh: tests/vm took $(($(date +%s) - start)) s inside the VM" >&2
exit $rc
