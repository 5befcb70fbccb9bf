"""The container runtime as the agent drives it: podman with runc and CRIU, through its CLI.

Outcomes are read from exit codes and podman's JSON, never from its prose; the one question
podman cannot answer that way, whether a registry accepts the credentials, is asked of the
registry itself before pulling.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.checkpoints import CriuStats
from chalicelib.wire.failures import (
    CheckpointFailed,
    ImagePullFailed,
    JobStartFailed,
    RegistryAuthFailed,
    RestoreFailed,
)

AGENT_DIR = Path(__file__).resolve().parent
# CRIU 4.1.1 is installed under /usr/local; runc finds criu on PATH, so it must come first.
CRIU_PATH = "/usr/local/sbin:/usr/local/bin"
# What CRIU does with a job's sockets (open TCP connections are closed, not carried). Named in
# each container's annotation, so it must be at this path on every host the job visits, as the
# agent is when every worker installs it alike.
CRIU_CONFIG = AGENT_DIR / "criu.conf"
# The podman network every job container joins: a bridge with outbound access (NAT through the
# host), created on each host when missing.
NETWORK = "openfloat"
# podman runs from here. conmon leaves an empty file named `oom` in its working directory when
# the kernel kills a container for memory (podman reads its own copy, kept with the container),
# and would otherwise leave it wherever the agent or a test was started.
PODMAN_CWD = Path(tempfile.gettempdir()) / "openfloat-podman"
_LOOPBACK = ("localhost", "127.")


def podman_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment podman runs in: the agent's private configuration, CRIU 4.1.1 first."""
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(AGENT_DIR / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(AGENT_DIR / "registries.conf")
    env["PATH"] = f"{CRIU_PATH}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    return env


@dataclass(frozen=True)
class Credentials:
    username: str
    token: str


@dataclass(frozen=True)
class ContainerState:
    status: str
    running: bool
    exit_code: int | None
    # The container's main process on the host, while it runs.
    pid: int | None = None
    # podman saw the kernel kill it for memory (it does not always: see agent.utilization).
    oom_killed: bool = False


@dataclass(frozen=True)
class CheckpointMode:
    """How checkpoints are taken on this host, and why, as the agent reports it at start."""

    incremental: bool
    description: str


def checkpoint_mode(env: dict[str, str] | None = None) -> CheckpointMode:
    """Incremental dumps (a pre-dump taken with the job running, then a dump of only the pages
    changed since) need the kernel's memory dirty tracking, which CRIU checks; without it every
    checkpoint is full."""
    try:
        checked = subprocess.run(["criu", "check", "--feature", "mem_dirty_track"],
                                 env=env or podman_environment(), capture_output=True, text=True,
                                 timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return CheckpointMode(False, f"full (criu check could not run: {error})")
    if checked.returncode != 0:
        return CheckpointMode(False, "full (the kernel has no memory dirty tracking: criu "
                                     "check --feature mem_dirty_track fails)")
    return CheckpointMode(True, "incremental (the kernel tracks dirty memory: each periodic "
                                "checkpoint is followed by a pre-dump, and the next dump "
                                "holds only the pages changed since it)")


def registry_of(image: str) -> str | None:
    """The registry host of a fully qualified reference, or None for a local image."""
    first = image.split("/", 1)[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        return None
    return None if first == "localhost" else first


def _is_loopback(host: str) -> bool:
    return host.startswith(_LOOPBACK)


def check_registry_credentials(registry: str, credentials: Credentials, timeout: float = 10) -> None:
    """Raise RegistryAuthFailed if the registry refuses the credentials (its /v2/ says 401)."""
    scheme = "http" if _is_loopback(registry) else "https"
    token = base64.b64encode(f"{credentials.username}:{credentials.token}".encode()).decode()
    request = urllib.request.Request(f"{scheme}://{registry}/v2/",
                                     headers={"Authorization": f"Basic {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _is_loopback(registry)
                                         else urllib.request.ProxyHandler())
    try:
        with opener.open(request, timeout=timeout):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise RegistryAuthFailed(
                f"registry {registry} refused the credentials stored for this image "
                f"(HTTP {error.code})") from None
        raise ImagePullFailed(f"registry {registry} answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ImagePullFailed(f"cannot reach registry {registry}: {error}") from None


@dataclass
class Podman:
    env: dict[str, str] = field(default_factory=podman_environment)
    binary: str = "podman"
    network: str = NETWORK

    def _run(self, *args: str, timeout: float = 600, check: bool = True,
             error: type[Exception] = JobStartFailed) -> subprocess.CompletedProcess[str]:
        PODMAN_CWD.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                                    text=True, timeout=timeout, check=False, cwd=PODMAN_CWD)
        except subprocess.TimeoutExpired:
            raise error(f"podman {args[0]} did not finish within {timeout:g}s") from None
        if check and result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise error(f"podman {' '.join(args[:2])} failed (exit {result.returncode}): {last}")
        return result

    # ---- images ----------------------------------------------------------------------------

    def image_exists(self, image: str) -> bool:
        return self._run("image", "exists", image, check=False).returncode == 0

    def ensure_image(self, image: str, credentials: Credentials | None = None) -> None:
        """Make `image` present locally, pulling it (with credentials) when it is not."""
        if self.image_exists(image):
            return
        registry = registry_of(image)
        if registry is None:
            raise ImagePullFailed(f"image {image} is not on this host and names no registry")
        args = ["pull", "--quiet"]
        if _is_loopback(registry):
            args.append("--tls-verify=false")
        with tempfile.TemporaryDirectory(prefix="openfloat-auth-") as scratch:
            if credentials is not None:
                check_registry_credentials(registry, credentials)
                # An auth file, not --creds: a token on a command line is visible to every user.
                authfile = Path(scratch) / "auth.json"
                secret = base64.b64encode(
                    f"{credentials.username}:{credentials.token}".encode()).decode()
                fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as file:
                    json.dump({"auths": {registry: {"auth": secret}}}, file)
                args += ["--authfile", str(authfile)]
            self._run(*args, image, error=ImagePullFailed)
        if not self.image_exists(image):
            raise ImagePullFailed(f"image {image} was pulled but is not present")

    # ---- network ---------------------------------------------------------------------------

    def ensure_network(self, error: type[Exception] = JobStartFailed) -> None:
        """Create the jobs' network on this host unless it exists. Agents sharing a host may
        race to create it: losing that race is fine, as long as the network is there."""
        if self._run("network", "exists", self.network, check=False).returncode == 0:
            return
        created = self._run("network", "create", "--driver", "bridge", self.network,
                            check=False)
        if created.returncode != 0 and self._run("network", "exists", self.network,
                                                 check=False).returncode != 0:
            last = (created.stderr.strip().splitlines() or ["no message"])[-1]
            raise error(f"cannot create the podman network {self.network}: {last}")

    # ---- containers ------------------------------------------------------------------------

    def create(self, name: str, image: str, command: list[str], *, env: dict[str, str],
               cpus: float | None, memory_bytes: int | None,
               mounts: list[tuple[Path, str]], options: list[str] | None = None,
               publish: list[str] | None = None, publish_address: str = "") -> None:
        """`options`: further `podman create` words (see `job_options`), placed before the
        agent's own so that none of them can override the name, network or limits. The
        container joins the jobs' network (see `ensure_network`), with `publish` ports
        published on `publish_address` (`IP:`, or "" for every address of the host)."""
        args = ["create", *(options or []), "--name", name, f"--network={self.network}",
                *_published(publish or [], publish_address),
                "--annotation", f"org.criu.config={CRIU_CONFIG}", "--log-driver", "k8s-file"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        if cpus:
            args += ["--cpus", f"{cpus:g}"]
        if memory_bytes:
            args += ["--memory", str(memory_bytes)]
        for source, target in mounts:
            args += ["--volume", f"{source}:{target}"]
        self._run(*args, image, *command)

    def copy_in(self, name: str, source: Path | str, target: str) -> None:
        self._run("cp", str(source), f"{name}:{target}")

    def log_path(self, name: str) -> Path:
        """Where the container's output goes. A restored container gets a new one."""
        result = self._run("container", "inspect", name, "--format",
                           "{{.HostConfig.LogConfig.Path}}")
        return Path(result.stdout.strip())

    def start(self, name: str) -> None:
        self._run("start", name)

    def state(self, name: str) -> ContainerState | None:
        result = self._run("container", "inspect", name, check=False)
        if result.returncode != 0:
            return None
        data: list[dict[str, Any]] = json.loads(result.stdout)
        state = data[0]["State"]
        running = bool(state.get("Running"))
        exit_code = None if running or state.get("Status") in ("created", "configured") \
            else int(state.get("ExitCode", 0))
        return ContainerState(status=str(state.get("Status")), running=running,
                              exit_code=exit_code, pid=int(state.get("Pid") or 0) or None,
                              oom_killed=bool(state.get("OOMKilled")))

    def remove(self, name: str) -> None:
        self._run("rm", "--force", "--ignore", "--time", "0", name, check=False)

    def containers_named(self, suffix: str) -> list[str]:
        """Every container, running or not, whose name ends with `suffix`."""
        result = self._run("ps", "--all", "--filter", f"name={re.escape(suffix)}$",
                           "--format", "{{.Names}}", check=False)
        return [name for name in result.stdout.split() if name.endswith(suffix)]

    def stop(self, name: str, grace_seconds: int) -> None:
        """SIGTERM to the container's processes, SIGKILL after `grace_seconds`."""
        self._run("stop", "--time", str(grace_seconds), name, check=False,
                  timeout=grace_seconds + 60)

    def kill(self, name: str) -> None:
        self._run("kill", name, check=False)

    # ---- checkpoint and restore ------------------------------------------------------------

    def checkpoint(self, name: str, export: Path, leave_running: bool = False,
                   timeout: float = 600, compress: str = "none", pre_dump: bool = False,
                   with_previous: bool = False) -> CriuStats:
        """Freeze the container and write its whole state (memory, processes, files) to
        `export`, a file or a named pipe, as a tar archive compressed with `compress` (none,
        zstd or gzip); the container stops unless `leave_running`.

        `pre_dump` writes only its memory, the container left running, and keeps those pages
        here as well; a later dump `with_previous` writes only the pages changed since, and is
        restored with that pre-dump's archive (both need the kernel's dirty tracking)."""
        extra = ["--leave-running"] if leave_running and not pre_dump else []
        extra += ["--pre-checkpoint"] if pre_dump else []
        extra += ["--with-previous"] if with_previous else []
        result = self._run("container", "checkpoint", name, "--export", str(export),
                           "--compress", compress, "--print-stats", *extra, timeout=timeout,
                           error=CheckpointFailed)
        return _stats(result.stdout)

    def restore(self, export: Path, name: str, publish: list[str] | None = None,
                publish_address: str = "", timeout: float = 600,
                previous: Path | None = None) -> CriuStats:
        """Bring the container of `export` back as `name`, on this host's jobs' network with a
        fresh address: the one it had may be another container's here. Its ports are
        published again on this host's `publish_address`. A dump taken `with_previous` needs
        the pre-dump's archive as `previous`."""
        extra = ["--import-previous", str(previous)] if previous is not None else []
        result = self._run("container", "restore", "--import", str(export), "--name", name,
                           "--ignore-static-ip", "--ignore-static-mac", *extra,
                           *_published(publish or [], publish_address),
                           "--print-stats", timeout=timeout, error=RestoreFailed)
        return _stats(result.stdout)

    def set_limits(self, name: str, cpus: float | None, memory_bytes: int | None) -> None:
        """Give a running container these CPU and memory limits. A restored container comes
        back with the limits of the instance it was checkpointed on; it must have this one's."""
        args = [*(["--cpus", f"{cpus:g}"] if cpus else []),
                *(["--memory", str(memory_bytes)] if memory_bytes else [])]
        if args:
            self._run("update", *args, name, error=RestoreFailed)


def job_options(launch: JobLaunch) -> list[str]:
    """What the job asked of its container: GPUs (through the host's CDI devices), privileged,
    root, and the extra options its submit passed (checked there against a list of allowed)."""
    options = ["--device=nvidia.com/gpu=all"] if launch.gpus else []
    if launch.privileged:
        options.append("--privileged")
    if launch.withRoot:
        options.append("--user=0:0")
    return options + list(launch.containerOptions)


def _published(ports: list[str], address: str) -> list[str]:
    return [f"--publish={address}{port}" for port in ports]


def _stats(output: str) -> CriuStats:
    """podman's --print-stats JSON: CRIU's own figures are under `container_statistics`."""
    start = output.find("{")
    if start < 0:
        return CriuStats()
    try:
        data = json.loads(output[start:])
    except json.JSONDecodeError:
        return CriuStats()
    entries = data.get("container_statistics") or [{}]
    criu = entries[0].get("criu_statistics") or entries[0]
    return CriuStats(
        freezingTimeUs=int(criu.get("freezing_time", 0)),
        frozenTimeUs=int(criu.get("frozen_time", 0)),
        memdumpTimeUs=int(criu.get("memdump_time", 0)),
        memwriteTimeUs=int(criu.get("memwrite_time", 0)),
        pagesScanned=int(criu.get("pages_scanned", 0)),
        pagesWritten=int(criu.get("pages_written", 0)),
    )
