#!/usr/bin/env bash
# vm.sh [--] CMD...  Run CMD as root inside a throwaway qemu VM booted from Debian's stock
# kernel, which has what this machine's kernel lacks: device-mapper (dm-thin-pool), plus loop
# and ext4. CMD runs in the repository directory (shared read-write), output streams to our
# stdout, and we exit with CMD's status, or 125 when the VM itself failed or timed out.
#
# Why a VM: the development and CI kernels have no device-mapper, and a fake dmsetup proves
# nothing. /dev/kvm exists there but does not work, so this is software emulation (TCG).
#
# Inside the guest:
#   /        host root over 9p, read-only, under an overlay whose upper layer is a sparse ext4
#            scratch disk: same paths as the host, writes and fallocate work, all thrown away
#   REPO     this repository over 9p, read-write (results come back to the host)
#   deno     copied onto the scratch disk (a start from 9p is 2-7x slower), first in PATH;
#            DENO_DIR is the host's (fill it on the host first: the guest has no network)
#   env      HOME=/root TERM=dumb DM_DISABLE_UDEV=1 (no udev), hostname thinvm, lo up,
#            plus NO_COLOR, CI, DENO_DIR and THINIMAGE_* from the caller
#
# Knobs: VM_MEM (MiB, 4096: radosgw runs inside), VM_CPUS (2), VM_DISK (20G), VM_TIMEOUT (s, 900),
#        THINIMAGE_VM_CACHE (REPO/.cache/vm), VM_KERNEL_PKG, VM_DEBUG=1 (guest kernel log).
set -euo pipefail
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "usage: scripts/vm.sh [--] CMD..." >&2; exit 2; }
die() { echo "vm.sh: $*" >&2; exit 125; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case $REPO in *,*) die "qemu's -virtfs cannot share a path with a comma: $REPO";; esac
CACHE=${THINIMAGE_VM_CACHE:-$REPO/.cache/vm}
MODS="virtio_pci virtio_blk 9pnet_virtio 9p overlay loop dm-thin-pool ext4"

bash "$REPO/scripts/setup.sh" || die "scripts/setup.sh could not install the Debian packages"
DENO_BIN=$(readlink -f "$(command -v deno)") || die "deno is not in PATH"
DENO_DIR_HOST=${DENO_DIR:-$(deno info --json 2>/dev/null | sed -nE 's/.*"denoDir": *"([^"]*)".*/\1/p')}

# --- 1. once: Debian's kernel .deb (downloaded, not installed); keep vmlinux + the modules
KPKG=${VM_KERNEL_PKG:-$(cat "$CACHE/kpkg" 2>/dev/null || true)} # rm -r the cache to update
[ -n "$KPKG" ] || KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$KPKG" ]; then
  apt-get update -q >/dev/null 2>&1 || true
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$KPKG" ] || die "linux-image-amd64 is not in the apt lists (apt-get update failed?)"
KDIR=$CACHE/$KPKG
if [ ! -s "$KDIR/vmlinux" ]; then
  echo "vm.sh: preparing $KPKG in $KDIR (once)" >&2
  tmp=$(mktemp -d)
  mkdir -p "$tmp/out/modules"
  (cd "$tmp" && apt-get download -q "$KPKG" >/dev/null 2>&1) || die "apt-get download $KPKG failed"
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  KVER=$(ls "$tmp/x/lib/modules")
  depmod -b "$tmp/x" "$KVER"
  for m in $MODS; do modprobe -d "$tmp/x" -S "$KVER" --show-depends "$m"; done |
    awk '$1=="insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
    cp "$ko" "$tmp/out/modules/"
    basename "$ko" >>"$tmp/out/modules/load-order"
  done
  # vmlinuz is a bzImage around an xz stream; the bare ELF boots through the PVH entry and
  # skips in-guest decompression (about 2.4 s instead of 4.7 s a boot under TCG).
  vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-*)
  off=$(LC_ALL=C grep -aobm1 $'\xfd7zXZ' "$vmlinuz" | head -1 | cut -d: -f1)
  { tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$tmp/out/vmlinux"; } || true
  [ "$(head -c4 "$tmp/out/vmlinux")" = $'\x7fELF' ] || die "could not extract vmlinux from $vmlinuz"
  mkdir -p "$CACHE"
  rm -rf "$KDIR"
  mv "$tmp/out" "$KDIR"
  rm -rf "$tmp"
fi
echo "$KPKG" >"$CACHE/kpkg"

# --- 2. every run: initramfs (static busybox + /init + modules, 0.2 s) and the scratch disk
ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is dynamic: install busybox-static"
CTL=$(mktemp -d)
trap 'rm -rf "$CTL"' EXIT
mkdir -p "$CTL/ir"/{bin,dev,proc,sys,lower,upper,newroot,lib} "$CTL/share" "$CTL/disk/u/opt/thinimage-vm/bin"
cp /bin/busybox "$CTL/ir/bin/"
cp -r "$KDIR/modules" "$CTL/ir/lib/"
cat >"$CTL/ir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin; export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for ko in $(cat /lib/modules/load-order); do insmod /lib/modules/$ko 2>/dev/null; done
hostname thinvm; ip link set lo up
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,cache=loose,ro hostroot /lower
mount -t ext4 -o noinit_itable /dev/vda /upper; mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root /newroot
for d in dev proc sys; do mount --move /$d /newroot/$d; done
mount -t tmpfs run /newroot/run; mkdir -p /newroot/run/vmctl /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs shm /newroot/dev/shm; mount -t devpts pts /newroot/dev/pts
mount -t 9p -o $o vmctl /newroot/run/vmctl
read -r wd < /newroot/run/vmctl/workdir; mkdir -p "/newroot$wd"
mount -t 9p -o $o workdir "/newroot$wd"
exec 3<>/newroot/dev/ttyS1; stty raw -echo <&3       # ttyS1 = command output
chroot /newroot /usr/bin/env -i HOME=/root TERM=dumb DM_DISABLE_UDEV=1 \
  PATH=/opt/thinimage-vm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash /run/vmctl/cmd </newroot/dev/null >&3 2>&3
echo $? > /newroot/run/vmctl/rc
sync; poweroff -f
EOF
chmod 755 "$CTL/ir/init"
(cd "$CTL/ir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$CTL/initrd"
# The overlay's upper layer starts with deno in it: mkfs -d copies it onto the disk image.
cp "$DENO_BIN" "$CTL/disk/u/opt/thinimage-vm/bin/deno"
# So does a copy of DENO_DIR (npm packages, transpiled and V8-compiled code, ~40 MB): every
# deno start reads hundreds of its files, which over 9p under emulation cost seconds a start.
if [ -n "$DENO_DIR_HOST" ] && [ -d "$DENO_DIR_HOST" ]; then
  mkdir -p "$CTL/disk/u$(dirname "$DENO_DIR_HOST")"
  # Another deno on the host may be writing its caches: a file that vanishes mid-copy (an
  # SQLite -wal) is not needed, and the copy is a cache, so only a missing directory fails.
  cp -a "$DENO_DIR_HOST" "$CTL/disk/u$DENO_DIR_HOST" 2>/dev/null || true
  [ -d "$CTL/disk/u$DENO_DIR_HOST" ] || die "could not copy DENO_DIR ($DENO_DIR_HOST)"
fi
truncate -s "${VM_DISK:-20G}" "$CTL/disk.img" # sparse
mkfs.ext4 -q -F -d "$CTL/disk" -E lazy_itable_init=1,lazy_journal_init=1 "$CTL/disk.img"
rm -rf "$CTL/disk"

{
  [ -n "$DENO_DIR_HOST" ] && printf 'export DENO_DIR=%q\n' "$DENO_DIR_HOST"
  for v in NO_COLOR CI $(compgen -e | grep '^THINIMAGE_' || true); do
    [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'cd -- %q || exit 125\n' "$REPO"
  printf '%q ' "$@"
  echo
} >"$CTL/share/cmd"
printf '%s\n' "$REPO" >"$CTL/share/workdir"

# --- 3. boot: ttyS0 = kernel console -> file, ttyS1 = command output -> our stdout
rc=0
start=$(date +%s.%N)
timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -cpu max -M q35 \
  -m "${VM_MEM:-4096}" -smp "${VM_CPUS:-2}" \
  -nodefaults -no-user-config -display none -no-reboot -nic none \
  -kernel "$KDIR/vmlinux" -initrd "$CTL/initrd" -append "console=ttyS0 panic=-1 quiet" \
  -serial "file:$CTL/console.log" -serial stdio \
  -drive "file=$CTL/disk.img,format=raw,if=virtio,cache=unsafe" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$CTL/share,mount_tag=vmctl,security_model=none" \
  -virtfs "local,path=$REPO,mount_tag=workdir,security_model=none,multidevs=remap" \
  </dev/null || rc=$?
[ "${VM_DEBUG:-0}" = 1 ] && cat "$CTL/console.log" >&2
awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "vm.sh: the VM ran %.1f s\n", e - s }' >&2
[ -s "$CTL/share/rc" ] && exit "$(cat "$CTL/share/rc")"
[ $rc = 124 ] && echo "vm.sh: timed out after ${VM_TIMEOUT:-900} s" >&2
echo "vm.sh: no exit status from the guest (qemu status $rc); guest kernel log tail:" >&2
tail -n 20 "$CTL/console.log" >&2
exit 125
