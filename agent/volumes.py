"""A job's data volumes on this host: new block volumes, S3 prefixes and NFS exports, mounted at
paths that are the same on every host the job visits, so a restored container finds them where
it left them. The volumes themselves never go into a checkpoint."""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.nfs import mount_nfs, stop_fuse
from chalicelib.wire.failures import JobStartFailed
from chalicelib.wire.specs import DataVolume


@dataclass(frozen=True)
class S3Access:
    """How s3fs reaches S3: the instance role on AWS, or keys and an endpoint elsewhere."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_environment(cls) -> S3Access:
        return cls(endpoint=os.environ.get("AWS_ENDPOINT_URL"),
                   access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
                   secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"))


def _is_mounted(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as error:
        # A FUSE mount whose process has died answers ENOTCONN: still a mount, to be released.
        return error.errno == errno.ENOTCONN
    return os.path.ismount(path)


def _mount_s3(volume: DataVolume, mountpoint: Path, access: S3Access, secrets_dir: Path) -> None:
    assert volume.source is not None
    bucket, _, prefix = volume.source.removeprefix("s3://").partition("/")
    target = f"{bucket}:/{prefix.strip('/')}" if prefix.strip("/") else bucket
    options = ["-o", "nonempty", "-o", "allow_other"]
    if volume.mode == "r":
        options += ["-o", "ro"]
    endpoint = f"https://{volume.endpoint}" if volume.endpoint else access.endpoint
    if endpoint:
        options += ["-o", f"url={endpoint}", "-o", "use_path_request_style"]
    if access.access_key and access.secret_key:
        # A file readable by root only: keys on a command line are visible to every user.
        secrets_dir.mkdir(parents=True, exist_ok=True)
        keys = secrets_dir / f"s3fs-{mountpoint.name}"
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f"{access.access_key}:{access.secret_key}\n")
        options += ["-o", f"passwd_file={keys}"]
    else:
        options += ["-o", "iam_role=auto"]
    result = subprocess.run(["s3fs", target, str(mountpoint), *options], capture_output=True,
                            text=True, timeout=60, check=False)
    if result.returncode != 0 or not _is_mounted(mountpoint):
        raise JobStartFailed(f"cannot mount {volume.source} at {volume.mountPath}: "
                             f"{result.stderr.strip() or 's3fs exited ' + str(result.returncode)}")


def mount_volumes(volumes: list[DataVolume], job_dir: Path,
                  access: S3Access) -> list[tuple[Path, str]]:
    """Prepare every volume under job_dir; (host path, container path) pairs to bind-mount."""
    mounts: list[tuple[Path, str]] = []
    for index, volume in enumerate(volumes):
        source = job_dir / "volumes" / str(index)
        source.mkdir(parents=True, exist_ok=True)
        if volume.kind == "s3" and not _is_mounted(source):
            _mount_s3(volume, source, access, job_dir / "keys")
        elif volume.kind == "nfs" and not _is_mounted(source):
            mount_nfs(volume, source, job_dir / "nfs")
        mounts.append((source, volume.mountPath))
    return mounts


def unmount_volumes(job_dir: Path) -> None:
    """Release the job's mounts on this host (its block volumes' files stay)."""
    root = job_dir / "volumes"
    if not root.exists():
        return
    for path in sorted(root.iterdir()):
        if _is_mounted(path):
            result = subprocess.run(["umount", str(path)], capture_output=True, timeout=60,
                                    check=False)
            if result.returncode != 0:
                # Busy or its server gone: detach it now, the kernel frees it when unused.
                subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60,
                               check=False)
        stop_fuse(path, job_dir / "nfs")
    keys = job_dir / "keys"
    if keys.exists():
        for key in keys.iterdir():
            key.unlink()
