#!/usr/bin/env bash
# A real S3 server on loopback for the retrieval tests and benchmarks: Ceph's radosgw (mon +
# memstore OSD + rgw), with the fixture buckets the tests read.
#
#   scripts/s3-server.sh env    start it unless one already answers, create the fixtures if
#                               missing or stale, print `export THINIMAGE_TEST_*=...` lines
#   scripts/s3-server.sh stop   stop the daemons this script started
#   scripts/s3-server.sh fixtures   build the fixture layers into .cache/fixtures/ unless there
#                               (what `env` uploads; scripts/test.sh builds them on the host
#                               before the device-test VM, where building costs a minute)
#
# State under $THINIMAGE_S3_DIR (default /tmp/thinimage-s3). Memory: memstore keeps objects in
# RAM as they are stored, capped by $THINIMAGE_S3_MEMSTORE_BYTES (default 8 GiB; the small
# fixtures use ~10 MB, the benchmark ~2.7 GB until it cleans up). A full OSD blocks writes.
# Works inside the device-test VM too, where loopback starts down and the hostname is empty.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${THINIMAGE_S3_DIR:-/tmp/thinimage-s3}
PORT=7480
ENDPOINT=http://127.0.0.1:$PORT
ACCESS_KEY=thinimage-test-ak
SECRET_KEY=thinimage-test-sk
PUBLIC_BUCKET=thinimage-fixtures
PRIVATE_BUCKET=thinimage-private
# Bump when scripts/make-fixtures.ts changes what it writes, so old fixtures are replaced.
# The scale is part of the version: the bucket holds one size of fixtures at a time.
# THINIMAGE_FIXTURES_SCALE=N divides the real sizes by N (default 500);
# THINIMAGE_FIXTURES_FULL_SIZE=1 means N=1.
SCALE=${THINIMAGE_FIXTURES_SCALE:-500}
[ -n "${THINIMAGE_FIXTURES_FULL_SIZE:-}" ] && SCALE=1
FIXTURES_VERSION=$(sha256sum scripts/make-fixtures.ts | cut -c1-16)-scale$SCALE

# The layers as built, by version: `env` uploads from here (the VM reads it over 9p).
FIXTURES_DIR=$PWD/.cache/fixtures/$FIXTURES_VERSION

log() { echo "s3-server: $*" >&2; }

answers() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null | grep -q 200; }

stop() {
  for p in "$B"/run/*.pid; do
    [ -e "$p" ] || continue
    pid=$(cat "$p")
    # Only our own daemons: the pid file is ours and the process is a ceph daemon.
    if [ -n "$pid" ] && grep -qE '^(radosgw|ceph-osd|ceph-mon)$' "/proc/$pid/comm" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 50); do
    alive=0
    for p in "$B"/run/*.pid; do
      [ -e "$p" ] && [ -d "/proc/$(cat "$p")" ] && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
}

start() {
  # In the VM: no loopback and no hostname until someone sets them (ceph needs both).
  if ! ip -o link show lo 2>/dev/null | grep -q 'UP'; then ip link set lo up; fi
  if [ -z "$(hostname 2>/dev/null)" ] || [ "$(hostname)" = "(none)" ]; then hostname thinvm; fi
  stop
  rm -rf "$B"
  mkdir -p "$B"/{mon,osd0,run,log,rgw}
  local fsid osduuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$B/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:3300
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
# With auth off, every messenger mode must be crc or rgw loops on auth error -13.
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
run dir = $B/run
log file = $B/log/\$name.log
admin socket = $B/run/\$name.asok
pid file = $B/run/\$name.pid
keyring = $B/keyring
[mon.a]
mon data = $B/mon
[osd.0]
osd data = $B/osd0
osd objectstore = memstore
memstore device bytes = ${THINIMAGE_S3_MEMSTORE_BYTES:-8589934592}
osd max object size = 134217728
osd memory target = 536870912
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $B/rgw
rgw dns name = 127.0.0.1
rgw thread pool size = 64
# Deleted objects are garbage-collected at once, not after the default two hours: memstore
# holds them in RAM until then, and the benchmark deletes gigabytes.
rgw gc obj min wait = 0
rgw gc processor period = 5
CONF
  local C=(-c "$B/ceph.conf")
  ceph-authtool --create-keyring "$B/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:3300]" --fsid "$fsid" "$B/monmap" >/dev/null
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$B/monmap" --keyring "$B/keyring"
  ceph-mon "${C[@]}" -i a
  osduuid=$(cat /proc/sys/kernel/random/uuid)
  ceph "${C[@]}" osd new "$osduuid" >/dev/null
  ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$osduuid" 2>/dev/null
  ceph-osd "${C[@]}" -i 0
  for _ in $(seq 1 300); do ceph "${C[@]}" osd stat 2>/dev/null | grep -q "1 up" && break; sleep 0.2; done
  radosgw "${C[@]}" -n client.rgw.a 2>/dev/null
  for _ in $(seq 1 600); do answers && break; sleep 0.2; done
  answers || { log "radosgw did not answer on $ENDPOINT (logs in $B/log)"; exit 1; }
  radosgw-admin "${C[@]}" user create --uid=thinimage-test --display-name=thinimage-test \
    --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null
}

build_fixtures() {
  [ -s "$FIXTURES_DIR/complete" ] && return 0
  log "building fixture layers into $FIXTURES_DIR"
  local tmp
  mkdir -p "$(dirname "$FIXTURES_DIR")"
  tmp=$(mktemp -d "$FIXTURES_DIR.XXXXXX")
  deno run --allow-read --allow-write --allow-env --allow-run=/usr/bin/tar,/usr/bin/gzip \
    scripts/make-fixtures.ts --out "$tmp" --scale "$SCALE" >&2 || { rm -rf "$tmp"; return 1; }
  echo "$FIXTURES_VERSION" >"$tmp/complete"
  # Another run may have built it meanwhile: the same bytes, so either copy does.
  mv -T "$tmp" "$FIXTURES_DIR" 2>/dev/null || rm -rf "$tmp"
}

fixtures_current() {
  [ "$(curl -s -m 5 "$ENDPOINT/$PUBLIC_BUCKET/fixtures-version" 2>/dev/null)" = "$FIXTURES_VERSION" ]
}

case "${1:-}" in
  env)
    if answers && ceph -c "$B/ceph.conf" health 2>/dev/null | grep -q 'full osd'; then
      log "the S3 server's memstore is full (writes would block): starting afresh"
      start
    elif answers; then
      log "reusing the S3 server on $ENDPOINT"
    else
      log "starting radosgw on $ENDPOINT (state in $B)"
      start
    fi
    if ! fixtures_current; then
      build_fixtures
      log "uploading fixtures (version $FIXTURES_VERSION)"
      AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
        deno run --allow-read --allow-env --allow-sys --allow-net=127.0.0.1 \
        scripts/make-fixtures.ts --from "$FIXTURES_DIR" \
        --endpoint "$ENDPOINT" --bucket "$PUBLIC_BUCKET" --private-bucket "$PRIVATE_BUCKET" \
        --version "$FIXTURES_VERSION" >&2
    fi
    echo "export THINIMAGE_TEST_S3_ENDPOINT=$ENDPOINT"
    echo "export THINIMAGE_TEST_BUCKET=$PUBLIC_BUCKET"
    echo "export THINIMAGE_TEST_PRIVATE_BUCKET=$PRIVATE_BUCKET"
    echo "export THINIMAGE_TEST_ACCESS_KEY=$ACCESS_KEY"
    echo "export THINIMAGE_TEST_SECRET_KEY=$SECRET_KEY"
    ;;
  stop) stop ;;
  fixtures) build_fixtures ;;
  *)
    echo "usage: $0 env|stop|fixtures" >&2
    exit 2
    ;;
esac
