#!/usr/bin/env bash
# Inside the VM (bash scripts/vm.sh -- bash bench/diag/mkfs_footprint.sh): pool blocks of 64 KiB that
# mkfs.ext4 provisions on an 8 GiB thin volume for several feature sets, then after a 2.6 MB layer,
# then what a snapshot plus a same-size layer adds. The evidence for the mkfs options in
# src/devmapper/fs.ts. Everything it makes dies with the VM.
set -uo pipefail
D=/var/tmp/mk; mkdir -p $D; truncate -s 64M $D/meta; truncate -s 8G $D/data
M=$(losetup -f --show $D/meta); DA=$(losetup -f --show $D/data)
dd if=/dev/zero of=$M bs=4096 count=1 status=none
dmsetup create tp --table "0 16777216 thin-pool $M $DA 128 0"
mapped() { dmsetup status $1 | awk '{print $4/128}'; }
id=0
mkdir -p /var/tmp/mnt /var/tmp/tree/usr/lib/a /var/tmp/tree/etc
for i in $(seq 1 200); do head -c 3000 /dev/urandom > /var/tmp/tree/usr/lib/a/f$i; done
head -c 2000000 /dev/urandom > /var/tmp/tree/usr/lib/big
tar -C /var/tmp/tree -cf /var/tmp/layer.tar .
variant() {
  name=$1; shift
  id=$((id+2))
  dmsetup message tp 0 "create_thin $id"
  dmsetup create t$id --table "0 16777216 thin /dev/mapper/tp $id"
  mkfs.ext4 -q -F "$@" /dev/mapper/t$id
  a=$(mapped t$id)
  mount -o nosuid,nodev,noexec /dev/mapper/t$id /var/tmp/mnt; umount /var/tmp/mnt
  b=$(mapped t$id)
  mount /dev/mapper/t$id /var/tmp/mnt; tar -C /var/tmp/mnt -xf /var/tmp/layer.tar; umount /var/tmp/mnt
  c=$(mapped t$id)
  dmsetup suspend t$id; dmsetup message tp 0 "create_snap $((id+1)) $id"; dmsetup resume t$id
  dmsetup create s$id --table "0 16777216 thin /dev/mapper/tp $((id+1))"
  before=$(dmsetup status tp | awk '{split($6,a,"/"); print a[1]}')
  mount /dev/mapper/s$id /var/tmp/mnt; tar -C /var/tmp/mnt -xf /var/tmp/layer.tar --transform 's,usr,usr2,'; umount /var/tmp/mnt
  after=$(dmsetup status tp | awk '{split($6,a,"/"); print a[1]}')
  echo "$name: mkfs $a, +mount $b, +layer(2.6MB) $c; snapshot+same-size layer adds $((after-before)) blocks"
  dmsetup remove s$id; dmsetup remove t$id
}
E=nodiscard,lazy_itable_init=0,lazy_journal_init=0,assume_storage_prezeroed=1
variant before-3d08ed3 -E $E
variant noresize -E $E -O ^resize_inode
variant packed -E $E,packed_meta_blocks=1
variant packed-noresize -E $E,packed_meta_blocks=1 -O ^resize_inode
variant now-in-fs.ts -E $E,packed_meta_blocks=1 -O ^resize_inode,sparse_super2
variant packed-noresize-j4 -E $E,packed_meta_blocks=1 -O ^resize_inode -J size=4
variant nojournal -E $E,packed_meta_blocks=1 -O ^resize_inode,^has_journal
variant flex256 -E $E,packed_meta_blocks=1 -O ^resize_inode -G 256
