#!/usr/bin/env bash
# Checks a worker host as its jobs will use it: podman with runc, CRIU 4.1.1 and `criu check`,
# and the agent and CLI starting the way the instance's user data starts them
# (`cd /opt/openfloat && python3 -m agent`). Run by infra/worker-setup.sh and by the worker
# image's test phase on an instance booted from the new image. Exits non-zero naming the problem.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export CONTAINERS_CONF=$ROOT/agent/containers.conf
export CONTAINERS_REGISTRIES_CONF=$ROOT/agent/registries.conf

log() { printf '[worker-check] %s\n' "$*"; }
die() { printf '[worker-check] ERROR: %s\n' "$*" >&2; exit 1; }

command -v podman >/dev/null || die "podman is not installed"
command -v runc >/dev/null || die "runc is not installed"
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}') || die "podman info failed"
[ "$runtime" = runc ] || die "podman runs containers with '$runtime', not runc"
log "podman $(podman --version | awk '{ print $3 }') with $(runc --version | head -n1)"

[ "$(command -v criu)" = /usr/local/sbin/criu ] || die "criu on PATH is '$(command -v criu)', not /usr/local/sbin/criu"
criu --version | grep -qx 'Version: 4.1.1' || die "criu is $(criu --version | head -n1), not 4.1.1"
checked=$(criu check 2>&1) || true
grep -q 'Looks good.' <<<"$checked" || die "criu check fails on this kernel ($(uname -r)): $checked"
log "criu 4.1.1: criu check looks good on $(uname -r)"

cd "$ROOT"
[ "$(command -v python3)" = /usr/bin/python3 ] || die "python3 on PATH is '$(command -v python3)', not Debian's /usr/bin/python3"
python3 -m agent --help >/dev/null || die "python3 -m agent --help fails in $ROOT"
python3 -m cli --help >/dev/null || die "python3 -m cli --help fails in $ROOT"
log "agent and CLI start in $ROOT with $(python3 --version)"
