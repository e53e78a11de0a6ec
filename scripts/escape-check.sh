#!/usr/bin/env bash
# escape-check.sh DENO-TEST-ARGS...  Run `deno test` where any write outside its scratch shows:
# in a private mount namespace, / is an overlay whose upper layer is a fresh tmpfs, /proc, /sys
# and /dev are bound in, and the tests run chrooted there with TMPDIR set to a scratch dir. When
# they end, every path in the upper layer is a file something wrote (or deleted: a whiteout).
# Prints the tests' output, then one line "UPPER <type> <path>" per path in the upper layer
# (type as find's %y; c = whiteout), then "RC <deno test's status>". Needs root and unshare.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DENO=$(readlink -f "$(command -v deno)")
DENO_DIR=${DENO_DIR:-$(deno info --json 2>/dev/null | sed -nE 's/.*"denoDir": *"([^"]*)".*/\1/p')}
SCRATCH=/tmp/thinimage-escape-scratch
exec unshare -m --propagation private /usr/bin/env REPO="$REPO" DENO="$DENO" DENO_DIR="$DENO_DIR" \
  SCRATCH="$SCRATCH" /usr/bin/bash -euc '
  S=$(mktemp -d /tmp/thinimage-escape-XXXXXX)
  mount -t tmpfs -o size=4g,mode=0700 tmpfs "$S"
  mkdir "$S/upper" "$S/work" "$S/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$S/root"
  for m in /proc /sys /dev; do mount --rbind "$m" "$S/root$m"; done
  mkdir -p "$S/root$SCRATCH"
  rc=0
  chroot "$S/root" /usr/bin/env -C "$REPO" TMPDIR="$SCRATCH" DENO_DIR="$DENO_DIR" NO_COLOR=1 THINIMAGE_ESCAPE_NAMESPACE=1 \
    "$DENO" test --no-check -A "$@" || rc=$?
  (cd "$S/upper" && find . -mindepth 1 -printf "UPPER %y %p\n")
  echo "RC $rc"
' escape-check "$@"
