#!/usr/bin/env bash
# The whole suite, as README.md documents it: `deno task check`, host tests (real SQLite, real
# S3 server on loopback), then device tests inside a real kernel in qemu. Ends with "N passed, N failed".
# Usage: scripts/test.sh [--host-only | --vm-only] [deno test filter args...]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mode=all
case "${1:-}" in --host-only) mode=host; shift;; --vm-only) mode=vm; shift;; esac

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

LOG=$(mktemp); trap 'rm -f "$LOG"' EXIT
rc=0
# Type-check, lint and format first, as README says `deno task test` does (a failure counts
# as one failed test and the suite still runs, so one run shows everything that is wrong).
if [ "$mode" = all ]; then
  NO_COLOR=1 deno task check 2>&1 | tail -n 5 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "FAILED | 0 passed | 1 failed (deno task check)" | tee -a "$LOG"; rc=1; }
fi
if [ "$mode" != vm ]; then
  # A real S3 server on loopback for the retrieval tests (started once, reused if running).
  # Its variables stay in this subshell: the VM runs its own server, on its own loopback.
  (
    eval "$(bash scripts/s3-server.sh env)" || { echo "s3 server failed to start"; exit 1; }
    NO_COLOR=1 deno test --allow-all --parallel --ignore=tests/vm,tests/tar/fuzz_test.ts,tests/tar/corpus_test.ts,tests/tar/hostile_host_test.ts tests/ "$@" 2>&1 | tee -a "$LOG"
    exit "${PIPESTATUS[0]}"
  ) || rc=1
  # Its memory and CPU are the VM's from here on.
  [ "$mode" = host ] || bash scripts/s3-server.sh stop || true
fi
if [ "$mode" != host ]; then
  # The fixture layers the VM's S3 server serves, built here: in the VM it costs a minute.
  bash scripts/s3-server.sh fixtures || echo "s3-server.sh fixtures failed: the VM builds them"
  # The device and end-to-end suites take minutes under emulation (more on a busy machine):
  # give each VM 40 minutes of CI's 90 before vm.sh calls it hung. Two VMs at once, each its
  # own kernel: the tests name kernel-wide things (chain and activation devices by content,
  # and reconcile resumes any suspended thinimage device), so two test files must not run
  # side by side in one kernel, and one file at a time keeps about one host core busy. The
  # second VM takes the files listed here (about half the time, radosgw's start included),
  # the first everything else, new files included.
  second=(tests/vm/e2e/crash_test.ts tests/vm/e2e/failfast_test.ts)
  narrowed=0
  for a in "$@"; do case $a in tests/vm/*) narrowed=1;; esac; done
  vm() { # vm OUT ARGS...: one VM's run into OUT; a summary line when it ran no tests
    local out=$1; shift
    NO_COLOR=1 VM_TIMEOUT=${VM_TIMEOUT:-2400} bash scripts/vm.sh -- bash scripts/test-in-vm.sh "$@" >"$out" 2>&1
    local vmrc=$?
    if [ "$vmrc" != 0 ] && ! grep -Eq '^(ok|FAILED) \| [0-9]+ passed' <(tail -n 40 "$out"); then
      echo "FAILED | 0 passed | 1 failed (the VM did not run its tests: status $vmrc)" >>"$out"
    fi
    return $vmrc
  }
  VM1=$(mktemp); VM2=$(mktemp); trap 'rm -f "$LOG" "$VM1" "$VM2"' EXIT
  if [ "$narrowed" = 1 ]; then
    vm "$VM1" "$@" & pid1=$!; pid2=
  else
    ignore=$(IFS=,; echo "${second[*]}")
    vm "$VM1" --ignore="$ignore" "$@" & pid1=$!
    vm "$VM2" "${second[@]}" "$@" & pid2=$!
  fi
  # The first VM's output as it comes, the second's once both are done.
  tail -n +1 --pid="$pid1" -f "$VM1" 2>/dev/null | tee -a "$LOG" &
  wait "$pid1" || rc=1
  if [ -n "$pid2" ]; then wait "$pid2" || rc=1; fi
  wait # the tail above
  [ -n "$pid2" ] && tee -a "$LOG" <"$VM2"
fi
# Sum every "ok | N passed ... | M failed" closing line deno test printed.
read -r passed failed < <(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$LOG" |
  sed -E 's/^[A-Z]+ \| ([0-9]+) passed.*\| ([0-9]+) failed.*/\1 \2/; s/^ok \| ([0-9]+) passed.*\| ([0-9]+) failed.*/\1 \2/' |
  awk '{p+=$1; f+=$2} END {print p+0, f+0}')
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
