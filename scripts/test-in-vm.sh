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
# The product's permission flags (src/cli/permissions.ts), not -A: a path that works only with
# broader grants must fail here as on a host. scripts/vm-test-flags.ts says what it adds.
mapfile -t FLAGS <<<"$(deno run --no-check --allow-read --allow-env scripts/vm-test-flags.ts)"
[ "${#FLAGS[@]}" -gt 0 ] || { echo "test-in-vm.sh: no permission flags" >&2; exit 1; }
# Files or folders given (tests/vm/...) narrow the run; otherwise all of tests/vm/.
where=(tests/vm/)
for a in "$@"; do case $a in tests/vm/*) where=();; esac; done
NO_COLOR=1 deno test --no-check "${FLAGS[@]}" "$@" "${where[@]}" || rc=$?
echo "test-in-vm.sh: tests/vm took $(($(date +%s) - start)) s inside the VM" >&2
exit $rc
