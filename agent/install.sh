#!/usr/bin/env bash
# Installs what an OpenFloat agent host needs to run jobs as podman containers and to
# checkpoint/restore them with CRIU: podman + runc, CRIU 4.1.1 (built from Debian trixie's
# source, since bookworm's 3.17 fails `criu check` on kernel 6.18, with agent/criu-*.patch
# applied), the clients of S3 and NFS
# data volumes, a local OCI registry and NFS server for tests, and the tools to build test
# images without one. Debian 12 (bookworm), as root.
# Idempotent: a second run only checks and exits within seconds.
# Never edits /etc/apt or /etc/containers: podman uses agent/containers.conf through
# CONTAINERS_CONF, and the trixie source is fetched with a private apt configuration.
set -euo pipefail

CRIU_VERSION=4.1.1
CACHE=/var/cache/openfloat
CRIU_BUILD=$CACHE/criu-build
# What the installed criu was built from (version and patches): a build from other sources is
# built again.
CRIU_STAMP=/usr/local/share/openfloat/criu.stamp
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export DEBIAN_FRONTEND=noninteractive
# runc (called by podman) finds criu on PATH: the 4.1.1 build must win over bookworm's.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export CONTAINERS_CONF=$HERE/containers.conf
export CONTAINERS_REGISTRIES_CONF=$HERE/registries.conf

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
START=$SECONDS

PACKAGES=(
  # containers; runc listed so apt does not pick crun for podman's "crun | runc"
  podman runc conmon uidmap
  # the jobs' network: CNI's bridge, port-mapping and firewall plugins, and the iptables they use
  containernetworking-plugins iptables
  # images without a registry, and a local registry with htpasswd (bcrypt) auth for tests
  busybox-static debootstrap docker-registry apache2-utils skopeo zstd
  # S3 data volumes are FUSE mounts
  s3fs
  # NFS data volumes: the kernel client's mount helper, and libfuse 3 for the userspace
  # client (agent/nfsfuse.py) where the kernel has no NFS client
  nfs-common fuse3
  # a real NFS server for tests (NFS-Ganesha over a directory) and the rpcbind it registers with
  nfs-ganesha nfs-ganesha-vfs rpcbind
  # CRIU build dependencies, as measured in shared/reference/criu-podman.md
  build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev
  libgnutls28-dev libnftables-dev uuid-dev xz-utils patch
  # bookworm's own criu only for the runtime libraries it pulls in
  criu
)

# --- 1. Debian packages ------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "packages: all ${#PACKAGES[@]} present"
else
  log "packages: installing ${#missing[@]}: ${missing[*]}"
  apt-get update -qq
  # docker-registry's postinst starts a system-wide registry on :5000; tests run their own,
  # so keep services from starting (the usual container-image policy-rc.d), if none is set.
  policy_tmp=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_tmp=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy_tmp" && chmod 755 "$policy_tmp"
    trap 'rm -f "$policy_tmp"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy_tmp" ]; then rm -f "$policy_tmp"; trap - EXIT; fi
  log "packages: done"
fi

# --- 2. CRIU 4.1.1 ---------------------------------------------------------------
# Fixes CRIU 4.1.1 needs on the kernels it runs on (each patch says what it fixes).
CRIU_PATCHES=("$HERE"/criu-*.patch)
criu_sources() {
  echo "criu $CRIU_VERSION"
  sha256sum "${CRIU_PATCHES[@]}" | awk '{ print $1 }'
}

criu_ok() {
  [ -x /usr/local/sbin/criu ] &&
    /usr/local/sbin/criu --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION" &&
    [ "$(cat "$CRIU_STAMP" 2>/dev/null)" = "$(criu_sources)" ] &&
    /usr/local/sbin/criu check 2>&1 | grep -q 'Looks good.'
}

# shellcheck source=agent/debian-mirror.sh
. "$HERE/debian-mirror.sh"

fetch_criu_source() {
  local apt_dir=$CACHE/apt-trixie mirror orig=criu_${CRIU_VERSION}.orig.tar.xz line url sha
  mirror=$(debian_mirror)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$CRIU_BUILD"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
    >"$apt_dir/sources.list"
  # Private sources, lists and caches: the machine's apt state never sees trixie.
  local apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o Acquire::Languages=none -o APT::Sandbox::User=root
  )
  log "criu: fetching trixie source index from $mirror"
  apt-get "${apt_opts[@]}" update -qq
  # apt knows the orig tarball's signed SHA256: use it for the fallback download too.
  line=$(cd "$CRIU_BUILD" && apt-get "${apt_opts[@]}" source --print-uris criu | grep -F " $orig " || true)
  [ -n "$line" ] || die "trixie has no $orig any more (apt-get source --print-uris criu shows no such file)"
  url=$(echo "$line" | awk '{ gsub("\047", "", $1); print $1 }')
  sha=$(echo "$line" | awk '{ print $4 }')
  # The .dsc/.debian parts may 404 on this mirror; only the orig tarball is needed.
  (cd "$CRIU_BUILD" && apt-get "${apt_opts[@]}" source --download-only -qq criu >/dev/null 2>&1) || true
  if [ ! -s "$CRIU_BUILD/$orig" ] ||
    ! echo "${sha#SHA256:}  $CRIU_BUILD/$orig" | sha256sum -c --quiet - 2>/dev/null; then
    log "criu: apt-get source failed, downloading $url"
    rm -f "$CRIU_BUILD/$orig"
    /usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$url" "$CRIU_BUILD/$orig" "$sha" >/dev/null
  fi
  echo "${sha#SHA256:}  $CRIU_BUILD/$orig" | sha256sum -c --quiet - || die "$orig: checksum mismatch"
}

if criu_ok; then
  log "criu: $CRIU_VERSION (patched: ${#CRIU_PATCHES[@]}) already installed and 'criu check' passes"
else
  orig=$CRIU_BUILD/criu_${CRIU_VERSION}.orig.tar.xz
  [ -s "$orig" ] || fetch_criu_source
  src=$CRIU_BUILD/criu-$CRIU_VERSION
  # A fresh tree every build, patched aside and renamed, so an interrupted run never leaves a
  # half-patched tree to build.
  rm -rf "$CRIU_BUILD/unpack" "$src" && mkdir -p "$CRIU_BUILD/unpack"
  tar -C "$CRIU_BUILD/unpack" -xf "$orig"
  for patch in "${CRIU_PATCHES[@]}"; do
    patch -d "$CRIU_BUILD/unpack/criu-$CRIU_VERSION" -p1 --forward --quiet <"$patch" ||
      die "criu: $(basename "$patch") does not apply to $CRIU_VERSION"
  done
  mv "$CRIU_BUILD/unpack/criu-$CRIU_VERSION" "$src" && rmdir "$CRIU_BUILD/unpack"
  log "criu: building $CRIU_VERSION with ${#CRIU_PATCHES[@]} patch(es) in $src (make -j2, ~30-60 s)"
  make -C "$src" -j2 >"$CRIU_BUILD/build.log" 2>&1 || { tail -n 30 "$CRIU_BUILD/build.log" >&2; die "criu build failed, see $CRIU_BUILD/build.log"; }
  make -C "$src" install-criu PREFIX=/usr/local >>"$CRIU_BUILD/build.log" 2>&1
  mkdir -p "$(dirname "$CRIU_STAMP")" && criu_sources >"$CRIU_STAMP"
  criu_ok || { /usr/local/sbin/criu check >&2 || true; die "criu $CRIU_VERSION installed but 'criu check' fails"; }
  log "criu: installed /usr/local/sbin/criu"
fi

# --- 3. Checks ------------------------------------------------------------------------
# NFS volumes: the kernel's client, or FUSE for the userspace one.
if grep -qw -e nfs -e nfs4 /proc/filesystems; then
  log "nfs volumes: the kernel's NFS client"
else
  grep -qw fuse /proc/filesystems && [ -c /dev/fuse ] ||
    die "this kernel has neither an NFS client nor FUSE: NFS volumes cannot be mounted"
  log "nfs volumes: userspace NFSv4.1 client over FUSE (no NFS client in this kernel)"
fi
[ "$(command -v criu)" = /usr/local/sbin/criu ] || die "criu on PATH is $(command -v criu), not /usr/local/sbin/criu"
log "criu check: $(criu check 2>&1 | grep -F 'Looks good.')"
info=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}}')
[ "$info" = "runc cgroupfs file" ] || die "podman with $CONTAINERS_CONF reports runtime/cgroups/events '$info'"
log "podman: $(podman --version | awk '{ print $3 }') with runc, cgroupfs, file events"
# A real container, from the local busybox image (built here in 0.1 s if missing).
bash "$HERE/images.sh" busybox
out=$(podman run --rm --network=none localhost/openfloat/busybox:local echo podman-ok)
[ "$out" = podman-ok ] || die "podman smoke test printed '$out'"
log "podman: smoke test passed"
log "done in $((SECONDS - START)) s"
