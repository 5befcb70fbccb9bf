"""The local OpCenter's API, served by several processes as API Gateway runs many Lambda
instances side by side.

The OpCenter's process (`python -m localmode`) opens the API's listening socket and starts the
workers; each worker inherits the socket, builds its own runtime from the environment (the
stack's settings, AWS at the local stand-in) and serves the deployed API function's handler
on it with a thread per connection, while the kernel spreads the connections across the
workers. A worker that dies is started again.

Reclaim drills act on the local instances, which only the OpCenter's process holds: a worker
asks it for them over a Unix socket (`Drills`), authenticated with a key the workers inherit.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import boto3
from chalice import Chalice
from chalice.config import Config as ChaliceConfig
from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, ThreadedHTTPServer

from chalicelib import errors
from chalicelib import runtime as runtime_module
from chalicelib.config import Config
from chalicelib.runtime import Reclaimer, Runtime
from localmode import pricing
from localmode.lambdas import handler_named

logger = logging.getLogger("openfloat.localmode.api")

DRILL_KEY_ENV = "OPENFLOAT_DRILL_KEY"
_REFUSALS = {cls.__name__: cls for cls in (errors.Conflict, errors.BadRequest, errors.NotFound)}
_DRILLS = ("reclaim", "vanish", "kill_agent")


# ---- reclaim drills, asked of the OpCenter's process -----------------------------------------

class Drills:
    """Serves the instance manager's drills to the API workers on a Unix socket."""

    def __init__(self, reclaimer: Reclaimer, path: Path) -> None:
        self.reclaimer, self.path = reclaimer, path
        self.key = secrets.token_bytes(32)
        self._listener = Listener(str(path), family="AF_UNIX", authkey=self.key)
        self._thread = threading.Thread(target=self._serve, name="drills", daemon=True)

    def start(self) -> Drills:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while True:
            try:
                connection = self._listener.accept()
            except OSError:
                return  # closed
            except Exception:  # a peer without the key: refused, go on
                logger.warning("a drill request without the key was refused")
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: Connection) -> None:
        with connection:
            try:
                drill, args = connection.recv()
                if drill not in _DRILLS:
                    raise errors.BadRequest(f"no drill {drill!r}")
                connection.send(("ok", getattr(self.reclaimer, drill)(*args)))
            except errors.OpenFloatError as refusal:
                connection.send((type(refusal).__name__, refusal.message))
            except EOFError:
                return
            except Exception as failure:  # noqa: BLE001 - the worker reports it as a 503
                logger.exception("a drill failed")
                connection.send(("failed", f"{type(failure).__name__}: {failure}"))


class DrillClient:
    """A worker's reclaimer: each drill carried out by the OpCenter's process."""

    def __init__(self, path: str, key: bytes) -> None:
        self.path, self.key = path, key

    def _ask(self, drill: str, *args: Any) -> Any:
        with Client(self.path, family="AF_UNIX", authkey=self.key) as connection:
            connection.send((drill, args))
            kind, value = connection.recv()
        if kind == "ok":
            return value
        refusal = _REFUSALS.get(kind)
        if refusal is not None:
            raise refusal(value)
        raise errors.Unavailable(f"the local instance manager failed the {drill} drill: {value}")

    def reclaim(self, instance_id: str, notice_seconds: int) -> str:
        return str(self._ask("reclaim", instance_id, notice_seconds))

    def vanish(self, instance_id: str) -> str:
        return str(self._ask("vanish", instance_id))

    def kill_agent(self, instance_id: str) -> None:
        self._ask("kill_agent", instance_id)


# ---- the workers ---------------------------------------------------------------------------

class _Handler(ChaliceRequestHandler):
    # Headers and body go out in two writes: without this the body of an answer on a kept-open
    # connection waits for the client's delayed ACK of the headers (40 ms).
    disable_nagle_algorithm = True


class _Inherited(ThreadedHTTPServer):
    """Chalice's local HTTP server on a listening socket opened by another process."""

    def __init__(self, fd: int, handler: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler, bind_and_activate=False)
        self.socket.close()  # type: ignore[has-type]  # the one made unbound, unused
        inherited = socket.socket(fileno=fd)
        self.socket = inherited
        self.server_address = inherited.getsockname()


def _serve(fd: int, handler: str, drills: str | None, ready: int) -> int:
    runtime = Runtime.from_config(Config.from_env(), boto3.Session())
    pricing.stand_in(runtime)
    if drills is not None:
        runtime.reclaimer = DrillClient(drills, bytes.fromhex(os.environ.pop(DRILL_KEY_ENV)))
    runtime_module.install(runtime)
    app = handler_named(handler)
    if not isinstance(app, Chalice):
        raise SystemExit(f"localmode: the API function's handler {handler} is not the Chalice app")
    # As chalice.local.create_local_server does: each thread its own current request.
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    chalice_config = ChaliceConfig.create(chalice_stage="dev", app_name="openfloat")
    server = _Inherited(fd, functools.partial(_Handler, app_object=app,
                                              config=chalice_config))

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the OpCenter's process stops its workers
    parent = os.getppid()

    def orphaned() -> None:
        # The OpCenter's process killed outright: its workers go with it.
        while os.getppid() == parent:
            time.sleep(1)
        server.shutdown()

    threading.Thread(target=orphaned, daemon=True).start()
    os.write(ready, b".")
    os.close(ready)
    server.serve_forever(poll_interval=0.2)
    return 0


class Workers:
    """The API's worker processes on one listening socket; a worker that dies is replaced."""

    def __init__(self, listening: socket.socket, handler: str, count: int,
                 drills: Drills | None) -> None:
        self.listening, self.handler, self.count, self.drills = listening, handler, count, drills
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._replace_the_dead, name="api-workers",
                                       daemon=True)

    def start(self, timeout: float = 120) -> Workers:
        self._processes = [self._spawn(timeout) for _ in range(self.count)]
        self._watch.start()
        return self

    def _spawn(self, timeout: float) -> subprocess.Popen[bytes]:
        read, write = os.pipe()
        command = [sys.executable, "-m", "localmode.api", "--fd", str(self.listening.fileno()),
                   "--handler", self.handler, "--ready", str(write)]
        env = dict(os.environ)
        if self.drills is not None:
            command += ["--drills", str(self.drills.path)]
            env[DRILL_KEY_ENV] = self.drills.key.hex()
        process = subprocess.Popen(command, env=env,
                                   pass_fds=(self.listening.fileno(), write))
        os.close(write)
        try:
            if not _wait_readable(read, timeout) or os.read(read, 1) != b".":
                process.kill()
                raise SystemExit(f"localmode: an API worker did not start (exit status "
                                 f"{process.wait()}); see above")
        finally:
            os.close(read)
        return process

    def _replace_the_dead(self) -> None:
        while not self._stopping.wait(1):
            for index, process in enumerate(self._processes):
                if process.poll() is not None and not self._stopping.is_set():
                    print(f"localmode: API worker {process.pid} exited with status "
                          f"{process.returncode}; starting another", file=sys.stderr, flush=True)
                    try:
                        self._processes[index] = self._spawn(120)
                    except SystemExit as failure:
                        print(failure, file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stopping.set()
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for process in self._processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_readable(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode.api", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--handler", required=True, help="the API function's Handler")
    parser.add_argument("--drills", default=None, help="the OpCenter's drill socket")
    parser.add_argument("--ready", type=int, required=True, help="written to once serving")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return _serve(args.fd, args.handler, args.drills, args.ready)


if __name__ == "__main__":
    sys.exit(main())
