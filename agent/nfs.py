"""NFS data volumes on this host: mounted by the kernel's NFS client where the kernel has one
(EC2, EFS), otherwise by a userspace NFSv4.1 client behind FUSE (agent.nfsfuse), one process
per volume that lives exactly as long as its mount."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.failures import JobStartFailed

ROOT = Path(__file__).resolve().parents[1]
MOUNT_SECONDS = 60  # what the kernel client's first `hard` attempt or the FUSE start may take
EXIT_SECONDS = 10  # for a FUSE process to leave once the kernel has dropped its mount

Client = Literal["kernel", "fuse"]


@dataclass(frozen=True)
class NfsExport:
    """Where an `nfs://host[:port]/export` volume lives; a port is written only when the server
    does not listen on 2049."""

    host: str
    path: str
    port: int | None = None

    @classmethod
    def parse(cls, source: str) -> NfsExport:
        parts = urlsplit(source)
        try:
            port = parts.port
        except ValueError as error:
            raise JobStartFailed(f"{source}: the port is not a number") from error
        if parts.scheme != "nfs" or not parts.hostname or not parts.path.startswith("/"):
            raise JobStartFailed(f"{source} is not an nfs://host/export address")
        return cls(host=parts.hostname, path=parts.path.rstrip("/") or "/", port=port)

    @property
    def is_efs(self) -> bool:
        return ".efs." in self.host and self.host.endswith(".amazonaws.com")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nfs://{host}{f':{self.port}' if self.port else ''}{self.path}"


def kernel_has_nfs(filesystems: str) -> bool:
    """Whether /proc/filesystems (its text) lists a file system the kernel's NFS client mounts."""
    return any(line.split()[-1] in ("nfs", "nfs4") for line in filesystems.splitlines()
               if line.split())


def choose_client(filesystems: str) -> Client:
    return "kernel" if kernel_has_nfs(filesystems) else "fuse"


def kernel_mount_command(export: NfsExport, mountpoint: Path, read_only: bool) -> list[str]:
    """`mount -t nfs4` with the options AWS gives for EFS: hard (a job's write waits out a server
    restart instead of failing), 60 s timeouts, 1 MiB transfers, a fresh source port on reconnect."""
    options = ["hard", "timeo=600", "retrans=2", "noresvport", "rsize=1048576", "wsize=1048576"]
    if export.is_efs:
        options.insert(0, "vers=4.1")  # EFS serves NFSv4.0 and 4.1 only; 4.1 is what AWS names
    if export.port:
        options.append(f"port={export.port}")
    options.append("ro" if read_only else "rw")
    host = f"[{export.host}]" if ":" in export.host else export.host
    return ["mount", "-t", "nfs4", "-o", ",".join(options), f"{host}:{export.path}",
            str(mountpoint)]


def fuse_command(export: NfsExport, mountpoint: Path, read_only: bool, ready_fd: int) -> list[str]:
    command = [sys.executable, "-m", "agent.nfsfuse", export.url, str(mountpoint),
               "--ready-fd", str(ready_fd)]
    return [*command, "--read-only"] if read_only else command


def mount_nfs(volume: DataVolume, mountpoint: Path, state_dir: Path,
              filesystems: Path = Path("/proc/filesystems")) -> Client:
    """Mount the volume's export at mountpoint with the client this kernel allows."""
    assert volume.source is not None
    export = NfsExport.parse(volume.source)
    client = choose_client(filesystems.read_text())
    if client == "kernel":
        result = subprocess.run(kernel_mount_command(export, mountpoint, volume.mode == "r"),
                                capture_output=True, text=True, timeout=MOUNT_SECONDS, check=False)
        if result.returncode != 0:
            raise JobStartFailed(f"cannot mount {volume.source} at {volume.mountPath}: "
                                 f"{result.stderr.strip() or 'mount exited ' + str(result.returncode)}")
    else:
        _start_fuse(export, mountpoint, volume, state_dir)
    return client


def _start_fuse(export: NfsExport, mountpoint: Path, volume: DataVolume, state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{mountpoint.name}.log"
    read_end, write_end = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        with open(log_path, "ab") as log:
            # Its own session: signals meant for the agent's process group leave the mount alone.
            process = subprocess.Popen(
                fuse_command(export, mountpoint, volume.mode == "r", write_end),
                pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd=ROOT, env=env)
        os.close(write_end)
        write_end = -1
        # The process writes once the kernel has sent FUSE's INIT, i.e. the mount is in place;
        # end of file first means it gave up (its reason is in the log).
        readable, _, _ = select.select([read_end], [], [], MOUNT_SECONDS)
        said = os.read(read_end, 64) if readable else b""
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if said.startswith(b"mounted"):
        (state_dir / f"{mountpoint.name}.pid").write_text(f"{process.pid}\n")
        return
    process.kill()
    process.wait(timeout=EXIT_SECONDS)
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30, check=False)
    reason = log_path.read_text(errors="replace").strip().splitlines()
    raise JobStartFailed(f"cannot mount {volume.source} at {volume.mountPath} with the userspace "
                         f"NFS client: {reason[-1] if reason else 'it did not start in time'}")


def _serves(pid: int, mountpoint: Path) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"agent.nfsfuse" in command and str(mountpoint).encode() in command


def stop_fuse(mountpoint: Path, state_dir: Path) -> None:
    """After the mount is gone: see its FUSE process leave, ending it if it lingers."""
    pid_file = state_dir / f"{mountpoint.name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    if not _serves(pid, mountpoint):
        return  # already gone, and the number may since belong to another process
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if select.select([pidfd], [], [], EXIT_SECONDS)[0]:
                return
            signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)
