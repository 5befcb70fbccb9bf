"""A private OCI registry on loopback for tests.

Runs Debian's ``docker-registry`` (distribution 2.8, installed by agent/install.sh) as a plain
subprocess with its own config, data dir and htpasswd file under ``workdir``, so tests can push
and pull real images (and test wrong credentials) with no network and no system service.
Only the standard library is used; bcrypt hashes come from ``htpasswd`` (apache2-utils).

    reg = start_registry(tmp_path, users={"alice": "s3cret"})
    try:
        ref = reg.image("openfloat/busybox:1")   # "127.0.0.1:PORT/openfloat/busybox:1"
        # podman push --tls-verify=false --creds alice:s3cret localhost/openfloat/busybox:local <ref>
    finally:
        reg.stop()

The registry speaks plain HTTP, so podman needs ``--tls-verify=false`` for it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"


class RegistryError(RuntimeError):
    pass


@dataclass
class Registry:
    host: str
    port: int
    workdir: Path
    users: dict[str, str]
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def address(self) -> str:
        """``host:port``, the prefix of every image reference in this registry."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def image(self, name: str) -> str:
        """Full reference for ``name`` (e.g. ``"team/app:1"``) in this registry."""
        return f"{self.address}/{name}"

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the registry; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the registry binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _bcrypt_line(user: str, password: str) -> str:
    # -i reads the password from stdin, keeping it out of the process list.
    out = subprocess.run(
        [HTPASSWD_BINARY, "-niB", user],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# Loopback must never go through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        _DIRECT.open(url, timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True  # 401 with auth on: it is up
    except OSError:
        return False


def start_registry(
    workdir: str | os.PathLike[str],
    port: int = 0,
    users: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 15.0,
) -> Registry:
    """Starts ``docker-registry serve`` on ``host:port`` (port 0: a free one).

    With ``users``, every request needs HTTP basic auth against a bcrypt htpasswd file;
    without, the registry is open. Returns once ``/v2/`` answers; raises RegistryError
    (with the registry's log) if it exits or does not answer within ``timeout`` seconds.
    """
    if shutil.which(REGISTRY_BINARY) is None:
        raise RegistryError(f"{REGISTRY_BINARY} not found: run agent/install.sh")
    workdir = Path(workdir)
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    if port:
        # Another server on the port would answer the readiness probe in its place.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError as e:
                raise RegistryError(f"{host}:{port} is taken: {e}") from e
    else:
        port = free_port(host)
    users = dict(users or {})

    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(data)}, "delete": {"enabled": True}},
        # A fixed secret silences the "No HTTP secret provided" warning.
        "http": {"addr": f"{host}:{port}", "secret": secrets.token_hex(16)},
        # The default storage health check would flip /v2/ to 503 on a slow disk.
        "health": {"storagedriver": {"enabled": False}},
    }
    if users:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text("".join(_bcrypt_line(u, p) + "\n" for u, p in users.items()))
        config["auth"] = {"htpasswd": {"realm": "openfloat-test", "path": str(htpasswd)}}
    # JSON is valid YAML and needs no quoting rules of its own.
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2) + "\n")

    # REGISTRY_* variables would override the config file: keep them out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log_path = workdir / "registry.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C in the test runner must not reach it first
        )
    reg = Registry(host, port, workdir, users, process, log_path)

    deadline = time.monotonic() + timeout
    while True:
        if not reg.running():
            raise RegistryError(f"{REGISTRY_BINARY} exited with {process.returncode}:\n{reg.log()[-2000:]}")
        if _answers(f"{reg.url}/v2/") and reg.running():
            return reg
        if time.monotonic() > deadline:
            reg.stop()
            raise RegistryError(
                f"{REGISTRY_BINARY} did not answer on {reg.address} in {timeout} s:\n{reg.log()[-2000:]}"
            )
        time.sleep(0.05)
