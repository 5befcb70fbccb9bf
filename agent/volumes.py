"""A job's data volumes on this host: new block volumes, S3 prefixes and NFS exports, mounted at
paths that are the same on every host the job visits, so a restored container finds them where
it left them. The volumes themselves never go into a checkpoint."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.nfs import mount_nfs, stop_fuse
from chalicelib.wire.agent import AttachedVolume
from chalicelib.wire.containers import DirMap
from chalicelib.wire.datavolumes import DataVolume, endpoint_url
from chalicelib.wire.failures import JobStartFailed


@dataclass(frozen=True)
class S3Access:
    """How s3fs reaches S3: the instance role on AWS, or keys and an endpoint elsewhere."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None

    @classmethod
    def from_environment(cls) -> S3Access:
        return cls(endpoint=os.environ.get("AWS_ENDPOINT_URL"),
                   access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
                   secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"))


# Mount path → the keys a volume brought with it (`credentials: stored`), read from the secret
# the job's launch names.
VolumeKeys = dict[str, S3Access]


def volume_keys(text: str) -> VolumeKeys:
    """The job's volume keys secret (JSON: mount path → accessKey, secretKey[, sessionToken])."""
    return {mount: S3Access(access_key=keys.get("accessKey"), secret_key=keys.get("secretKey"),
                            session_token=keys.get("sessionToken"))
            for mount, keys in json.loads(text).items()}


def _mount_points() -> set[str]:
    """Every mount point of this mount namespace, as the kernel lists them."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            # The fifth field, with space, tab, newline and backslash escaped in octal.
            return {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                    for line in table if len(line.split()) > 4}
    except OSError:
        return set()


def _is_mounted(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as error:
        # A FUSE mount whose process has died answers ENOTCONN: still a mount, to be released.
        return error.errno == errno.ENOTCONN
    # os.path.ismount misses a bind mount of a directory of the same file system.
    return os.path.ismount(path) or os.path.realpath(path) in _mount_points()


def _unmount(path: Path) -> None:
    """Everything mounted at `path`: mounts may be stacked there (one per host that bound it,
    when hosts share a machine); one that is busy or whose server is gone is detached now and
    freed by the kernel once unused."""
    for _ in range(8):
        if not _is_mounted(path):
            return
        done = subprocess.run(["umount", str(path)], capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60,
                           check=False)


@dataclass(frozen=True)
class S3fsMount:
    """One s3fs invocation: its arguments, what it adds to s3fs's environment, and the content
    of its password file when it uses one."""

    argv: list[str]
    env: dict[str, str]
    passwd: str | None = None


def s3fs_mount(volume: DataVolume, mountpoint: Path, access: S3Access,
               passwd_file: Path) -> S3fsMount:
    """How s3fs mounts the volume with these keys (or the instance role when there are none)."""
    assert volume.source is not None
    bucket, _, prefix = volume.source.removeprefix("s3://").partition("/")
    target = f"{bucket}:/{prefix.strip('/')}" if prefix.strip("/") else bucket
    options = ["-o", "nonempty", "-o", "allow_other"]
    if volume.mode == "r":
        options += ["-o", "ro"]
    endpoint = endpoint_url(volume.endpoint) if volume.endpoint else access.endpoint
    if endpoint:
        options += ["-o", f"url={endpoint}", "-o", "use_path_request_style"]
    env: dict[str, str] = {}
    passwd = None
    if access.access_key and access.secret_key and access.session_token:
        # s3fs takes a session token only from its environment (readable by root alone).
        env = {"AWSACCESSKEYID": access.access_key, "AWSSECRETACCESSKEY": access.secret_key,
               "AWSSESSIONTOKEN": access.session_token}
        options += ["-o", "use_session_token"]
    elif access.access_key and access.secret_key:
        # A file readable by root only: keys on a command line are visible to every user.
        passwd = f"{access.access_key}:{access.secret_key}\n"
        options += ["-o", f"passwd_file={passwd_file}"]
    else:
        options += ["-o", "iam_role=auto"]
    return S3fsMount(["s3fs", target, str(mountpoint), *options], env, passwd)


def _mount_s3(volume: DataVolume, mountpoint: Path, access: S3Access, secrets_dir: Path) -> None:
    call = s3fs_mount(volume, mountpoint, access, secrets_dir / f"s3fs-{mountpoint.name}")
    if call.passwd is not None:
        secrets_dir.mkdir(parents=True, exist_ok=True)
        keys = secrets_dir / f"s3fs-{mountpoint.name}"
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(call.passwd)
    # Keys of the agent's own never mix with the volume's: s3fs reads these names first.
    base = {k: v for k, v in os.environ.items()
            if k not in ("AWSACCESSKEYID", "AWSSECRETACCESSKEY", "AWSSESSIONTOKEN")}
    result = subprocess.run(call.argv, capture_output=True, text=True, timeout=60, check=False,
                            env={**base, **call.env})
    if result.returncode != 0 or not _is_mounted(mountpoint):
        why = result.stderr.strip() or f"s3fs exited {result.returncode}"
        if "iam_role=auto" in call.argv:
            bucket = call.argv[1].partition(":")[0]  # s3fs's target: BUCKET[:/PREFIX]
            why += (f" (mounted with the instance's role, as the volume brought no keys: the "
                    f"stack's WorkerDataBuckets must name {bucket}, or the volume must bring "
                    "its keys)")
        raise JobStartFailed(f"cannot mount {volume.source} at {volume.mountPath}: {why}")


def access_for(volume: DataVolume, access: S3Access, keys: VolumeKeys) -> S3Access:
    """The keys a volume is mounted with: its own when it brought them, else the agent's."""
    if volume.credentials is None:
        return access
    own = keys.get(volume.mountPath)
    if own is None or not own.access_key or not own.secret_key:
        raise JobStartFailed(f"the S3 keys of the volume at {volume.mountPath} were not handed "
                             "to this agent")
    return S3Access(endpoint=access.endpoint, access_key=own.access_key,
                    secret_key=own.secret_key, session_token=own.session_token)


@dataclass(frozen=True)
class BlockDevices:
    """Where an EBS volume the control plane attached shows up on this host. On EC2 it is a
    disk: found by its volume id (the serial of a Nitro instance's NVMe disk) or by the device
    name it was attached as, and formatted the first time. A local instance has no disks: the
    instance manager gives it one directory per attached volume, `local_root/<volume id>`,
    there only while the volume is attached to it."""

    local_root: Path | None = None
    wait_seconds: float = 120.0
    poll_seconds: float = 0.5

    def candidates(self, volume: AttachedVolume) -> list[Path]:
        if self.local_root is not None:
            return [self.local_root / volume.volumeId]
        serial = volume.volumeId.replace("-", "")
        letter = volume.device.removeprefix("/dev/sd")
        return [Path("/dev/disk/by-id") / f"nvme-Amazon_Elastic_Block_Store_{serial}",
                Path(volume.device), Path(f"/dev/xvd{letter}")]

    def find(self, volume: AttachedVolume) -> Path:
        """The volume's disk (or directory); JobStartFailed when it does not appear in time."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            for path in self.candidates(volume):
                if path.exists():
                    return path
            if time.monotonic() >= deadline:
                raise JobStartFailed(f"volume {volume.volumeId} ({volume.device}) did not "
                                     f"appear on this host within {self.wait_seconds:.0f} s")
            time.sleep(self.poll_seconds)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        why = result.stderr.strip() or f"{argv[0]} exited {result.returncode}"
        raise JobStartFailed(f"{what}: {why}")


def _mount_block(volume: DataVolume, attached: AttachedVolume, mountpoint: Path,
                 devices: BlockDevices) -> None:
    """Mount the job's EBS volume at mountpoint: a new one is formatted first. Whatever an
    earlier host left mounted there is let go first: only what is attached here counts."""
    source = devices.find(attached)
    _unmount(mountpoint)
    what = f"cannot mount volume {attached.volumeId} at {volume.mountPath}"
    if source.is_dir():
        _run(["mount", "--bind", str(source), str(mountpoint)], what)
        return
    found = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(source)],
                           capture_output=True, text=True, timeout=60, check=False)
    if not found.stdout.strip():
        _run(["mkfs.ext4", "-q", "-F", "-L", f"dv{attached.index}", str(source)], what)
    _run(["mount", str(source), str(mountpoint)], what)


def mount_volumes(volumes: list[DataVolume], job_dir: Path, access: S3Access,
                  keys: VolumeKeys | None = None, attached: Sequence[AttachedVolume] = (),
                  devices: BlockDevices = BlockDevices()) -> list[tuple[Path, str]]:
    """Prepare every volume under job_dir; (host path, container path) pairs to bind-mount.
    New block volumes are the EBS volumes in `attached`, by their place in `volumes`."""
    mounts: list[tuple[Path, str]] = []
    by_index = {a.index: a for a in attached}
    for index, volume in enumerate(volumes):
        source = job_dir / "volumes" / str(index)
        source.mkdir(parents=True, exist_ok=True)
        if volume.kind == "block":
            if index not in by_index:
                raise JobStartFailed(f"the block volume at {volume.mountPath} is not attached "
                                     "to this instance")
            _mount_block(volume, by_index[index], source, devices)
        elif volume.kind == "s3" and not _is_mounted(source):
            _mount_s3(volume, source, access_for(volume, access, keys or {}), job_dir / "keys")
        elif volume.kind == "nfs" and not _is_mounted(source):
            mount_nfs(volume, source, job_dir / "nfs")
        mounts.append((source, volume.mountPath))
    return mounts


def map_host_dirs(dir_maps: list[DirMap], job_dir: Path, host_root: Path) -> list[tuple[Path, str]]:
    """Each `--dirMap` as this host's own directory, bound at a path under job_dir that is the
    same on every host, as podman needs to restore the container: after a move the job sees
    the new host's directory, not the old one's."""
    mounts: list[tuple[Path, str]] = []
    for index, mapped in enumerate(dir_maps):
        host_dir = host_root / mapped.hostPath.lstrip("/")
        host_dir.mkdir(parents=True, exist_ok=True)
        stable = job_dir / "volumes" / f"dir-{index}"
        stable.mkdir(parents=True, exist_ok=True)
        _unmount(stable)
        result = subprocess.run(["mount", "--bind", str(host_dir), str(stable)],
                                capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise JobStartFailed(f"cannot map host directory {mapped.hostPath}: "
                                 f"{result.stderr.strip() or 'mount exited ' + str(result.returncode)}")
        mounts.append((stable, mapped.containerPath))
    return mounts


def unmount_volumes(job_dir: Path) -> None:
    """Release the job's mounts on this host (its block volumes keep their files, on EBS)."""
    root = job_dir / "volumes"
    if not root.exists():
        return
    for path in sorted(root.iterdir()):
        _unmount(path)
        stop_fuse(path, job_dir / "nfs")
    keys = job_dir / "keys"
    if keys.exists():
        for key in keys.iterdir():
            key.unlink()
