"""The userspace NFS mount: a FUSE file system (libfuse 3 through mfusepy) whose every call is
an NFSv4.1 call made by nfs-rs. Run as its own process, one per mounted volume, for hosts whose
kernel has no NFS client: `python -m agent.nfsfuse nfs://host[:port]/export MOUNTPOINT`."""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

# mfusepy picks libfuse 2 when both are installed; 3 allows 1 MiB requests and mounts as root
# without a setuid helper. Set before the import, which loads the library.
os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy  # noqa: E402
from nfs_rs import Client, File, FileInfo, FileType, NfsError  # noqa: E402
from nfs_rs._client import _file_info  # noqa: E402

T = TypeVar("T")
FUSE_CAP_WRITEBACK_CACHE = 1 << 16  # libfuse 3's fuse_common.h

_TYPE_BITS = {FileType.FILE: stat.S_IFREG, FileType.DIRECTORY: stat.S_IFDIR,
              FileType.SYMLINK: stat.S_IFLNK}


def _errno(error: NfsError) -> int:
    return error.errno or errno.EIO


@contextmanager
def _as_os_errors() -> Iterator[None]:
    """NFS failures reach the caller as the errno the kernel client would give."""
    try:
        yield
    except NfsError as error:
        raise mfusepy.FuseOSError(_errno(error)) from error


def _relative(path: str) -> str:
    return path.lstrip("/") or "."


def _attributes(info: FileInfo) -> dict[str, Any]:
    return {"st_mode": _TYPE_BITS.get(info.type, 0) | (info.mode & 0o7777),
            "st_nlink": info.nlink, "st_uid": info.uid, "st_gid": info.gid,
            "st_size": info.size, "st_blocks": (info.used + 511) // 512, "st_ino": info.fileid,
            "st_atime": info.atime, "st_mtime": info.mtime, "st_ctime": info.ctime}


class Export:
    """A connected client with the export's root reachable. nfs-rs 0.8.7 spells the root "."
    and sends LOOKUP ".", which NFSv4 servers refuse (NFS4ERR_BADNAME, RFC 8881 18.15.3);
    its native layer takes "" for the root, so calls on the root go there directly."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.native: Any = client._inner  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def stat(self, path: str) -> FileInfo:
        if path != ".":
            return self.client.stat(path)
        info: FileInfo = _file_info(".", self.native.stat(""))  # type: ignore[assignment]
        return info

    def listdir(self, path: str) -> list[str]:
        if path != ".":
            return self.client.listdir(path)
        return [entry["name"] for batch in self.native.scandir("") for entry in batch]

    def chmod(self, path: str, mode: int) -> None:
        self.native.chmod("" if path == "." else path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.native.chown("" if path == "." else path, uid, gid)

    def utime(self, path: str, *, ns: tuple[int, int]) -> None:
        self.native.utime("" if path == "." else path, ns[0], ns[1])


class NfsFileSystem(mfusepy.Operations):
    """FUSE operations on one NFS export. Each call goes to the server as the user who made it
    (AUTH_SYS, one NFS session per uid and gid, as the kernel client sends them): the server
    decides what that user may do, squashes root if its export says so, and owns new files to
    their maker. An open file keeps the session that opened it, so the kernel's write-back,
    made as root, is still written as the file's user."""

    use_ns = True

    def __init__(self, connect: Callable[[int, int], Client],
                 ready: Callable[[], None] = lambda: None) -> None:
        self.connect = connect
        self.ready = ready
        self.sessions: dict[tuple[int, int], Export] = {}
        self.files: dict[int, File] = {}
        self.next_handle = 1
        self._guard = threading.Lock()

    @property
    def client(self) -> Export:
        """The session of the user making the current call, opened at its first call."""
        uid, gid, _ = mfusepy.fuse_get_context()
        with self._guard:
            found = self.sessions.get((uid, gid))
        if found is None:
            made = Export(self._call(lambda: self.connect(uid, gid)))
            with self._guard:
                found = self.sessions.setdefault((uid, gid), made)
            if found is not made:
                made.client.close()  # another thread of the same user was first
        return found

    def close(self) -> None:
        for session in self.sessions.values():
            session.client.close()

    def _call(self, operation: Callable[[], T]) -> T:
        with _as_os_errors():
            return operation()

    def _keep(self, file: File) -> int:
        with self._guard:
            handle, self.next_handle = self.next_handle, self.next_handle + 1
            self.files[handle] = file
            return handle

    def _file(self, handle: int) -> File:
        found = self.files.get(handle)
        if found is None:
            raise mfusepy.FuseOSError(errno.EBADF)
        return found

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        # The kernel gathers small writes in its page cache and sends them as large requests,
        # written back at close, fsync and unmount: close-to-open, as the kernel NFS client.
        if conn_info and conn_info.capable & FUSE_CAP_WRITEBACK_CACHE:
            conn_info.want |= FUSE_CAP_WRITEBACK_CACHE
        self.ready()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        return self._call(lambda: _attributes(self.client.stat(_relative(path))))

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self._call(lambda: self.client.listdir(_relative(path)))]

    def statfs(self, path: str) -> dict[str, int]:
        space = self._call(self.client.fs_stat)
        block = 4096
        return {"f_bsize": block, "f_frsize": block, "f_blocks": space.total_bytes // block,
                "f_bfree": space.free_bytes // block, "f_bavail": space.available_bytes // block,
                "f_files": space.total_files, "f_ffree": space.free_files,
                "f_favail": space.available_files, "f_namemax": 255}

    def mkdir(self, path: str, mode: int) -> None:
        self._call(lambda: self.client.mkdir(_relative(path), mode & 0o7777))

    def rmdir(self, path: str) -> None:
        self._call(lambda: self.client.rmdir(_relative(path)))

    def unlink(self, path: str) -> None:
        self._call(lambda: self.client.unlink(_relative(path)))

    def rename(self, old: str, new: str) -> None:
        self._call(lambda: self.client.rename(_relative(old), _relative(new)))

    def link(self, target: str, source: str) -> None:
        self._call(lambda: self.client.link(_relative(source), _relative(target)))

    def symlink(self, target: str, source: str) -> None:
        self._call(lambda: self.client.symlink(source, _relative(target)))

    def readlink(self, path: str) -> str:
        return self._call(lambda: self.client.readlink(_relative(path)))

    def chmod(self, path: str, mode: int) -> None:
        self._call(lambda: self.client.chmod(_relative(path), mode & 0o7777))

    def chown(self, path: str, uid: int, gid: int) -> None:
        def change() -> None:
            info = self.client.stat(_relative(path))
            # -1 (as an unsigned 32-bit id) leaves that id as it is.
            self.client.chown(_relative(path), info.uid if uid in (-1, 0xFFFFFFFF) else uid,
                              info.gid if gid in (-1, 0xFFFFFFFF) else gid)
        self._call(change)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._call(lambda: self.client.truncate(_relative(path), length))

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            now = self._call(lambda: self.client.stat(_relative(path))).mtime
            times = (now, now)
        self._call(lambda: self.client.utime(_relative(path), ns=(times[0], times[1])))

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        def make() -> File:
            client = self.client
            file = client.open(_relative(path), "w+b")
            client.chmod(_relative(path), mode & 0o7777)
            return file
        return self._keep(self._call(make))

    def open(self, path: str, flags: int) -> int:
        # The kernel has already applied O_TRUNC through truncate and keeps the O_APPEND offset.
        mode = "rb" if flags & os.O_ACCMODE == os.O_RDONLY else "r+b"
        return self._keep(self._call(lambda: self.client.open(_relative(path), mode)))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._call(lambda: self._file(fh).read_at(offset, size))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._call(lambda: self._file(fh).write_at(data, offset))
        return len(data)

    def flush(self, path: str, fh: int) -> None:
        self._call(self._file(fh).flush)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self._call(self._file(fh).flush)

    def release(self, path: str, fh: int) -> None:
        with self._guard:
            found = self.files.pop(fh, None)
        if found is not None:
            self._call(found.close)


def _options(read_only: bool) -> dict[str, Any]:
    # allow_other: the job's container runs as any user; default_permissions: the kernel checks
    # modes first, as the server will, sparing it calls bound to fail. Foreground: the agent
    # owns this process and its lifetime.
    options: dict[str, Any] = {"foreground": True, "allow_other": True,
                               "default_permissions": True}
    if read_only:
        options["ro"] = True
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.nfsfuse", description=__doc__)
    parser.add_argument("url", help="nfs://host[:port]/export")
    parser.add_argument("mountpoint")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--ready-fd", type=int, help="written to, then closed, once mounted")
    args = parser.parse_args(argv)

    def connect(uid: int, gid: int) -> Client:
        return Client.connect(args.url, versions=["4.1"], uid=uid, gid=gid,
                              connect_timeout=10, operation_timeout=60)

    try:
        first = connect(0, 0)  # fails fast, before anything is mounted, if the server is not there
    except NfsError as error:
        print(f"cannot reach {args.url}: {error}", file=sys.stderr)
        return 2

    def ready() -> None:
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"mounted\n")
            os.close(args.ready_fd)

    file_system = NfsFileSystem(connect, ready)
    file_system.sessions[(0, 0)] = Export(first)
    try:
        mfusepy.FUSE(file_system, args.mountpoint, fsname=args.url, subtype="nfs",
                     **_options(args.read_only))
    finally:
        file_system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
