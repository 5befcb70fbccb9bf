#!/usr/bin/env bash
# Makes a Debian 12 (bookworm) host an OpenFloat worker, as the worker image's build runs it
# from the unpacked source archive (/opt/openfloat): no apt runs of Debian's own, the kernel
# modules NFS and FUSE volumes need, agent/install.sh (podman, runc, CRIU 4.1.1: the same
# script the local mode runs), and the agent's Python packages beside its code, where
# `cd /opt/openfloat && python3 -m agent` (the instance's user data) finds them. Then
# infra/worker-check.sh. As root; safe to run again.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '[worker-setup] %s\n' "$*"; }
die() { printf '[worker-setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
# shellcheck source=/dev/null
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || die "this is ${PRETTY_NAME:-an unknown system}, not Debian 12 (bookworm)"

# --- 0. No apt runs of its own -------------------------------------------------------------
# A worker boots the image as it was tested: Debian's daily apt timers would upgrade packages
# under a running job (and, here, hold apt's lock while install.sh needs it). Stopping the
# services waits for a run already going.
if [ -d /run/systemd/system ]; then
  systemctl disable --now apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
  systemctl stop apt-daily.service apt-daily-upgrade.service unattended-upgrades.service 2>/dev/null || true
  systemctl disable unattended-upgrades.service 2>/dev/null || true
fi

# --- 1. Kernel modules -------------------------------------------------------------------
# The agent mounts NFS volumes with the kernel's client when /proc/filesystems lists nfs,
# which it does only once the module is loaded: load it (and FUSE) at every boot, and now,
# so install.sh's checks see them too.
printf '# OpenFloat worker: NFS and FUSE data volumes\nnfs\nfuse\n' >/etc/modules-load.d/openfloat.conf
for module in nfs fuse; do
  modprobe -q "$module" 2>/dev/null || log "module $module: not loadable on this kernel"
done

# --- 2. Containers and CRIU -----------------------------------------------------------------
bash "$ROOT/agent/install.sh"

# --- 3. The agent's Python packages -----------------------------------------------------------
# Installed with pip into ROOT for Debian's own python3, which the user data runs: they sit
# beside the agent's code, so only a python3 started in ROOT sees them (never cloud-init or
# anything else of Debian's), and Debian's packages are left as they are.
if ! dpkg-query -W -f='${db:Status-Status}' python3-pip 2>/dev/null | grep -qx installed; then
  log "python: installing python3 and pip"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi
log "python: $(python3 --version), installing requirements-agent.txt into $ROOT"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore --upgrade \
  --target "$ROOT" -r "$ROOT/requirements-agent.txt" -c "$ROOT/constraints.txt"

# --- 4. Checks ------------------------------------------------------------------------------
bash "$ROOT/infra/worker-check.sh"
log "done"
