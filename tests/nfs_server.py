"""A real NFS server for tests: NFS-Ganesha with its VFS backend exporting a temporary directory
as `/export`, NFSv4 only, on 127.0.0.1 at a free port, so a volume reads
`nfs://127.0.0.1:PORT/export`.

Ganesha will not start unless it can register with rpcbind, which NFSv4 clients never ask. Each
server gets a private one: a mount namespace with its own /run holds the rpcbind socket that
Ganesha registers through, and that rpcbind listens in a network namespace of its own, so
neither the machine's port 111 nor another test's server is touched."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.registry import free_port

CONFIG = """\
NFS_CORE_PARAM {{
    NFS_Port = {port};
    Bind_addr = 127.0.0.1;
    NFS_Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSV4 {{
    Graceless = true;  # opens are refused for 90 s after start otherwise
    RecoveryBackend = fs;
    RecoveryRoot = {work}/recovery;
    Only_Numeric_Owners = true;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = {export};
    Pseudo = /export;
    Access_Type = RW;
    Squash = {squash};
    SecType = sys;
    Protocols = 4;
    Transports = TCP;
    FSAL {{ Name = VFS; }}
}}
"""

# Runs inside the private mount namespace; ends as Ganesha itself (exec), rpcbind its child.
LAUNCH = """\
set -e
mount -t tmpfs openfloat-nfs /run
unshare --net rpcbind -f &
while [ ! -S /run/rpcbind.sock ]; do
  kill -0 $! 2>/dev/null || { echo "rpcbind did not start" >&2; exit 1; }
  sleep 0.05
done
exec ganesha.nfsd -F -f "$1" -L "$2" -p "$3" -N NIV_EVENT
"""


@dataclass
class NfsServer:
    export_dir: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nfs://127.0.0.1:{self.port}/export"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)


def _answers(url: str) -> bool:
    from nfs_rs import Client, NfsError

    try:
        with Client.connect(url, versions=["4.1"], connect_timeout=2, operation_timeout=2):
            return True
    except NfsError:
        return False


def start_nfs_server(work: Path, root_squash: bool = False, timeout: float = 30) -> NfsServer:
    """Start a server exporting work/export, mapping root to nobody if root_squash as many
    servers do by default; return once it answers an NFSv4.1 session."""
    export = work / "export"
    for path in (export, work / "recovery"):
        path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "ganesha.conf"
    config.write_text(CONFIG.format(port=port, work=work, export=export,
                                   squash="Root_Squash" if root_squash else "No_Root_Squash"))
    log = work / "ganesha.log"
    with open(work / "launch.log", "wb") as launch_log:
        # Its own process group: stop() ends Ganesha and its rpcbind together.
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", LAUNCH, "launch",
             str(config), str(log), str(work / "ganesha.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=launch_log,
            start_new_session=True)
    server = NfsServer(export, port, log, process)
    deadline = time.monotonic() + timeout
    while not _answers(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            text = "".join(p.read_text(errors="replace") for p in (work / "launch.log", log)
                           if p.exists())
            raise RuntimeError(f"the NFS server did not answer on port {port}:\n{text[-3000:]}")
        time.sleep(0.1)
    return server
