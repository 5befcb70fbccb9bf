"""What the pipeline plugins' tests share: running the real `float` the way a plugin runs it,
and the status tables the plugins carry (docs/clients.md cites each one)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localmode.demo import FLOAT

# The nineteen names every plugin's table knows; any other string crashes the Python ones.
ALL_STATUSES = frozenset({
    "Submitted", "Initializing", "Starting", "Executing", "Capturing", "Floating", "Suspended",
    "Suspending", "Resuming", "Completed", "Cancelled", "Cancelling", "FailToComplete",
    "FailToExecute", "CheckpointFailed", "Timedout", "NoAvailableHost", "Unknown",
    "WaitingForLicense",
})


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def float_env(config_dir: Path) -> dict[str, str]:
    """The environment a plugin runs `float` in: its own saved session, nothing else."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FLOAT_", "AWS_"))}
    env["FLOAT_CONFIG_DIR"] = str(config_dir)
    # `float` is looked up on PATH, as every plugin does.
    env["PATH"] = f"{FLOAT.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(args: list[str], env: dict[str, str], *, merge_stderr: bool = False,
        timeout: float = 60) -> Ran:
    """One `float` call. nf-float merges stderr into stdout and kills a call after 60 s; the
    Python plugins keep the two apart."""
    result = subprocess.run(["float", *args], env=env, text=True, timeout=timeout,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    return Ran(result.returncode, result.stdout, result.stderr or "")
