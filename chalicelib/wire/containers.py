"""How a job's container runs, in MMCloud's spellings: further `podman run` options
(`--extraContainerOpts`), directories of the host (`--dirMap`) and published ports
(`--publish`)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import model_validator

from chalicelib.wire.datavolumes import MOUNT_PATH
from chalicelib.wire.specs import Spec

_PUBLISH = re.compile(r"^(\d{1,5}):(\d{1,5})(/tcp|/udp)?$")


# `--extraContainerOpts`: options of `podman run` a job may add. The agent owns the rest
# (name, network, resources, mounts, logging), which a checkpoint and restore depend on.
CONTAINER_FLAGS = frozenset({"--privileged", "--read-only", "--init"})
CONTAINER_OPTIONS = frozenset({
    "--cap-add", "--cap-drop", "--device", "--shm-size", "--ulimit", "--security-opt",
    "--sysctl", "--tmpfs", "--workdir", "--user", "--env", "--label", "--pids-limit",
    "--group-add", "--umask",
})
_SHORT = {"-w": "--workdir", "-u": "--user", "-e": "--env", "-l": "--label"}


def parse_container_options(text: str) -> list[str]:
    """`--cap-add SYS_ADMIN --shm-size=2g` as podman arguments, one `--name=value` word per
    option; an option the agent must control, or one podman does not know, is refused."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise ValueError(f"cannot read extraContainerOpts {text!r}: {error}") from None
    options: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        name, sep, value = word.partition("=")
        name = _SHORT.get(name, name)
        if name in CONTAINER_FLAGS and not sep:
            options.append(name)
        elif name in CONTAINER_OPTIONS:
            if not sep:
                index += 1
                if index == len(words):
                    raise ValueError(f"extraContainerOpts: {word} needs a value")
                value = words[index]
            options.append(f"{name}={value}")
        else:
            allowed = ", ".join(sorted(CONTAINER_FLAGS | CONTAINER_OPTIONS))
            raise ValueError(f"extraContainerOpts: {name} is not allowed (the agent sets the "
                             f"container's name, network, resources and mounts); allowed: "
                             f"{allowed}")
        index += 1
    return options


class DirMap(Spec):
    """`--dirMap /host/path:/container/path`: a directory of the host the job runs on.

    It is the host's own: after a move the job sees the new host's directory, which starts
    empty unless a hostInit script fills it."""

    hostPath: str
    containerPath: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            host, sep, container = value.strip().partition(":")
            if not sep:
                raise ValueError(f"expected /host/path:/container/path, got {value!r}")
            return {"hostPath": host, "containerPath": container}
        return value

    @model_validator(mode="after")
    def _absolute(self) -> DirMap:
        for path in (self.hostPath, self.containerPath):
            if not MOUNT_PATH.match(path) or path == "/" or "/../" in path + "/":
                raise ValueError(f"dirMap paths must be absolute paths below /, got {path!r}")
        return self

    def __str__(self) -> str:
        return f"{self.hostPath}:{self.containerPath}"


def check_ports(ports: list[str]) -> list[str]:
    """`HOST:CONTAINER[/tcp|/udp]`, ports 1-65535, no host port twice."""
    seen: set[tuple[str, str]] = set()
    for port in ports:
        match = _PUBLISH.match(port)
        if not match or not all(1 <= int(p) <= 65535 for p in match.group(1, 2)):
            raise ValueError(f"{port!r} is not HOST:CONTAINER with ports 1-65535 "
                             "(optionally /tcp or /udp)")
        if (match.group(1), match.group(3) or "/tcp") in seen:
            raise ValueError("a host port is published twice")
        seen.add((match.group(1), match.group(3) or "/tcp"))
    return ports
