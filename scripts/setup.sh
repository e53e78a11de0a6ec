#!/usr/bin/env bash
# Installs what the tests and the main job need from Debian, when missing (idempotent, quiet).
# qemu + busybox + kmod: the real-kernel VM; thin-provisioning-tools: thin_ls in the VM;
# ceph: the local S3 server (radosgw); curl: the fetch benchmark's baseline.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in qemu-system-x86 busybox-static kmod thin-provisioning-tools xz-utils e2fsprogs \
  radosgw ceph-mon ceph-osd ceph-common curl tar coreutils util-linux dmsetup; do
  have "$p" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# apt lists may be missing on a fresh machine, or stale.
apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/thinimage-apt.log 2>&1 || {
  apt-get update -q >>/tmp/thinimage-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/thinimage-apt.log 2>&1
} || { tail -n 20 /tmp/thinimage-apt.log >&2; exit 1; }
