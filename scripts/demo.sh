#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: boots the real-kernel VM; inside it starts the
# local S3 server with the fixture bucket, creates a thin pool the way the reference setup
# does, activates all three images, prints `thinimage ls` and a file from an activated root
# filesystem, then runs again to show that nothing is downloaded or unpacked twice.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
deno install --frozen >/dev/null
exec bash scripts/vm.sh -- bash scripts/demo-in-vm.sh "$@"
