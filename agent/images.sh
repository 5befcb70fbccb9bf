#!/usr/bin/env bash
# Builds the local test images without any registry (these hosts reach none):
#   localhost/openfloat/busybox:local  busybox-static rootfs, ~2 MB, 0.1 s
#   localhost/openfloat/python:local   Debian bookworm minbase + python3 via debootstrap, ~45 s
# Usage: images.sh [busybox|python|all]   (default: all). As root, after install.sh.
# Idempotent: an image that exists is left alone; the python rootfs tarball is cached under
# /var/cache/openfloat/images, so re-importing it after `podman rmi` takes seconds.
# From pytest: subprocess.run(["bash", "agent/images.sh", "busybox"], check=True)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=/var/cache/openfloat/images
BUSYBOX_IMAGE=localhost/openfloat/busybox:local
PYTHON_IMAGE=localhost/openfloat/python:local
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
export CONTAINERS_REGISTRIES_CONF=${CONTAINERS_REGISTRIES_CONF:-$HERE/registries.conf}

log() { printf '[images] %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "[images] run as root" >&2; exit 1; }
mkdir -p "$CACHE"
# Parallel test runs would otherwise build the same image twice.
exec 9>"$CACHE/.lock"
flock 9

# The bookworm mirror the machine already uses (debootstrap needs one).
# shellcheck source=agent/debian-mirror.sh
. "$HERE/debian-mirror.sh"

build_busybox() {
  if podman image exists "$BUSYBOX_IMAGE"; then log "$BUSYBOX_IMAGE: present"; return; fi
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root}
  chmod 1777 "$tmp/root/tmp"
  cp /bin/busybox "$tmp/root/bin/busybox"
  chroot "$tmp/root" /bin/busybox --install -s
  echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/root/etc/passwd"
  echo 'root:x:0:' >"$tmp/root/etc/group"
  tar --numeric-owner -C "$tmp/root" -cf "$tmp/rootfs.tar" .
  podman import -q --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tmp/rootfs.tar" "$BUSYBOX_IMAGE" >/dev/null
  rm -rf "$tmp"
  log "$BUSYBOX_IMAGE: built"
}

build_python() {
  if podman image exists "$PYTHON_IMAGE"; then log "$PYTHON_IMAGE: present"; return; fi
  local tarball=$CACHE/python-bookworm-rootfs.tar
  if [ ! -s "$tarball" ]; then
    local tmp mirror
    tmp=$(mktemp -d "$CACHE/debootstrap.XXXXXX")
    mirror=$(debian_mirror)
    log "$PYTHON_IMAGE: debootstrap bookworm + python3 from $mirror (~45 s)"
    debootstrap --variant=minbase --include=python3 bookworm "$tmp/root" "$mirror" \
      >"$tmp/debootstrap.log" 2>&1 || { tail -n 20 "$tmp/debootstrap.log" >&2; exit 1; }
    # The downloaded .debs and apt lists are half the size and of no use in a job.
    rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
    tar --numeric-owner -C "$tmp/root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$tmp"
  fi
  podman import -q --change 'CMD ["/usr/bin/python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    "$tarball" "$PYTHON_IMAGE" >/dev/null
  log "$PYTHON_IMAGE: imported from $tarball"
}

case "${1:-all}" in
  busybox) build_busybox ;;
  python) build_python ;;
  all) build_busybox; build_python ;;
  *) echo "usage: $0 [busybox|python|all]" >&2; exit 2 ;;
esac
