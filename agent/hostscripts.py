"""A job's host scripts on this host: `hostInit` before its container starts or is restored
here, `hostTerminate` once the job has left (its container exited, was cancelled, or was
checkpointed to move or suspend). They run on the host, not in the container, as the agent's
user (root on an instance), each in a scratch directory of its own and within a time limit.

What a run prints (stdout and stderr together) goes to the job's `hostinit.log` or
`hostterminate.log`, written again every few seconds while it runs, under a header line naming
the host and a last line saying how it ended (`wire.hostscripts` has the layout).

A script's environment: the agent's, the job's `-e` variables (PATH stays the host's), and
FLOAT_JOB_ID, FLOAT_INSTANCE_ID, FLOAT_INSTANCE_TYPE (when known), FLOAT_HOST_SCRIPT (hostInit
or hostTerminate), FLOAT_HOST_EVENT (start, restore, exit, cancel or checkpoint) and
FLOAT_JOB_DIR (the job's directory on the host, which holds its data volumes), FLOAT_HOST_ROOT
(where the host's own files are, `--dirMap` directories among them: `/` on an instance).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.failures import HostInitFailed
from chalicelib.wire.hostscripts import (
    HOST_INIT,
    HOST_TERMINATE,
    MAX_RUN_LOG_BYTES,
    HostScript,
    run_key,
)

logger = Logger(service="openfloat-agent")

# hostInit holds up the job's start on every host, within the control plane's start timeout.
HOST_INIT_SECONDS = 300.0
# hostTerminate runs on the agent's watch thread when a job exits, which sends no heartbeats
# meanwhile: its limit stays well under the silence after which an agent is taken as lost.
HOST_TERMINATE_SECONDS = 60.0
# A script past its limit gets SIGTERM, with every process it started, and SIGKILL this long after.
KILL_GRACE_SECONDS = 5.0
# How often the output of a running script is written to its log.
SHIP_SECONDS = 2.0
# Of the output, this much of the end is read for the last line a failure quotes.
_LAST_LINE_BYTES = 4096

HostEvent = Literal["start", "restore", "exit", "cancel", "checkpoint"]
_EVENTS: dict[str, str] = {
    "start": "before the job starts on this host",
    "restore": "before the job is restored on this host",
    "exit": "after the job's container exited",
    "cancel": "after the job was cancelled",
    "checkpoint": "after the job was checkpointed to leave this host",
}


@dataclass(frozen=True)
class ScriptRun:
    """How one run of a host script ended."""

    script: HostScript
    # None: it ran past its time limit and was killed.
    exit_code: int | None
    seconds: float
    limit: float
    last_line: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def outcome(self) -> str:
        if self.exit_code is None:
            return f"killed: it did not finish within its time limit of {self.limit:g} s"
        return f"exit code {self.exit_code} after {self.seconds:.1f} s"

    def failure(self) -> str:
        """The sentence a job's history quotes for a run that failed."""
        how = (f"did not finish within its time limit of {self.limit:g} s and was killed"
               if self.exit_code is None else f"exited with code {self.exit_code}")
        said = f"its last line: {self.last_line}" if self.last_line else "it printed nothing"
        return f"its {self.script} script {how} ({said})"


def run_script(path: Path, *, env: dict[str, str], cwd: Path, limit: float, output: Path,
               progress: Callable[[], None] = lambda: None, every: float = SHIP_SECONDS,
               grace: float = KILL_GRACE_SECONDS) -> int | None:
    """Run the script at `path` (under its shebang's interpreter, else /bin/sh) with its stdout
    and stderr appended to `output`, calling `progress` every `every` seconds while it runs.
    Its exit code; None when it ran past `limit` and was killed with all it started.

    Output goes to a file, not a pipe: a daemon the script leaves running (a mount helper,
    say) must not hold the run open. Such a process is left alone once the script has exited."""
    command = [str(path)] if path.read_bytes().startswith(b"#!") else ["/bin/sh", str(path)]
    deadline = time.monotonic() + limit
    with output.open("ab") as out:
        # Its own process group, so that at the time limit everything it started goes too.
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, process_group=0)
    while True:
        try:
            return process.wait(timeout=max(0.0, min(every, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            _kill_group(process, grace)
            return None
        progress()


def _kill_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the script's process group; SIGKILL to what is left of it after `grace`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # The script's children too, should they have outlived it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def tail(path: Path, limit: int = MAX_RUN_LOG_BYTES) -> bytes:
    """The file's content, or its last `limit` bytes after a line saying how much was left out."""
    size = path.stat().st_size
    with path.open("rb") as file:
        if size <= limit:
            return file.read()
        file.seek(size - limit)
        return f"[... {size - limit} earlier bytes left out ...]\n".encode() + file.read()


def last_line(path: Path) -> str:
    """The last line of the file with any text on it, shortened to 200 characters."""
    lines = tail(path, _LAST_LINE_BYTES).decode("utf-8", "replace").splitlines()
    text = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class RunLog:
    """One run's object in the job's host script log: header, output so far, and how it ended."""

    s3: Any
    bucket: str
    key: str
    header: str
    output: Path
    _shipped: int = -1

    def ship(self, footer: str = "") -> None:
        size = self.output.stat().st_size
        if size == self._shipped and not footer:
            return
        body = self.header.encode() + tail(self.output) + footer.encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                           ContentType="text/plain; charset=utf-8")
        self._shipped = size

    def ship_guarded(self, footer: str = "") -> None:
        """Ship, or log why not: a log that cannot be written must not stop the script."""
        try:
            self.ship(footer)
        except Exception:  # noqa: BLE001 - the next call tries again
            logger.exception("host script log not written", extra={"key": self.key})


@dataclass
class HostScripts:
    """Runs the host scripts of the jobs on this instance."""

    s3: Any
    bucket: str
    instance_id: str
    instance_type: str | None
    work_dir: Path
    init_seconds: float = HOST_INIT_SECONDS
    terminate_seconds: float = HOST_TERMINATE_SECONDS
    ship_seconds: float = SHIP_SECONDS
    # Where the host's own files are (`/`, or a local instance's own directory).
    host_root: Path = Path("/")
    # Jobs whose hostTerminate ran here, and how: it runs once for each visit of a job.
    _terminated: dict[str, ScriptRun | None] = field(default_factory=dict)

    def init(self, launch: JobLaunch, job_dir: Path, event: HostEvent) -> ScriptRun | None:
        """Run the job's hostInit script, if it has one, before its container starts (or is
        restored) on this host. HostInitFailed, with its exit and last line, if it fails."""
        self._terminated.pop(launch.jobId, None)
        try:
            run = self._run(launch, HOST_INIT, launch.hostInitKey, job_dir, event,
                            self.init_seconds)
        except (OSError, BotoCoreError, ClientError) as error:
            raise HostInitFailed(f"job {launch.jobId} on {self.instance_id}: its hostInit "
                                 f"script could not be fetched or run: {error}") from None
        if run is not None and not run.ok:
            raise HostInitFailed(f"job {launch.jobId} on {self.instance_id}: {run.failure()}")
        return run

    def terminate(self, launch: JobLaunch, job_dir: Path, event: HostEvent) -> ScriptRun | None:
        """Run the job's hostTerminate script, if it has one, now that the job has left this
        host; once a visit (a second call answers how the first went). Never raises: a
        failure is in the log and in what it returns."""
        if launch.jobId in self._terminated:
            return self._terminated[launch.jobId]
        try:
            run = self._run(launch, HOST_TERMINATE, launch.hostTerminateKey, job_dir, event,
                            self.terminate_seconds)
        except Exception:  # noqa: BLE001 - the job has ended here whatever its script does
            logger.exception("hostTerminate could not be run", extra={"job_id": launch.jobId})
            run = None
        self._terminated[launch.jobId] = run
        return run

    def _run(self, launch: JobLaunch, script: HostScript, key: str | None, job_dir: Path,
             event: HostEvent, limit: float) -> ScriptRun | None:
        if key is None:
            return None
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC)
        log_key = run_key(launch.jobId, script, started.strftime("%Y%m%dT%H%M%S.%fZ"),
                          self.instance_id)
        where = self.instance_id + (f" ({self.instance_type})" if self.instance_type else "")
        header = (f"==> {script} on {where} at {started.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                  f"{_EVENTS[event]} <==\n")
        with tempfile.TemporaryDirectory(prefix=f"{launch.jobId}-{script}-",
                                         dir=self.work_dir) as scratch:
            root = Path(scratch)
            path = root / script
            path.write_bytes(body)
            path.chmod(0o700)
            cwd = root / "work"
            cwd.mkdir()
            output = root / "output"
            output.touch()
            log = RunLog(self.s3, self.bucket, log_key, header, output)
            log.ship_guarded()  # the header at once: `float log cat` shows it is running
            clock = time.monotonic()
            code = run_script(path, env=self._environment(launch, script, event, job_dir),
                              cwd=cwd, limit=limit, output=output, progress=log.ship_guarded,
                              every=self.ship_seconds)
            run = ScriptRun(script=script, exit_code=code, seconds=time.monotonic() - clock,
                            limit=limit, last_line=last_line(output))
            log.ship_guarded(f"==> {run.outcome()} <==\n")
        logger.info("host script ran", extra={"job_id": launch.jobId, "script": script,
                                              "event": event, "rc": code})
        return run

    def _environment(self, launch: JobLaunch, script: HostScript, event: HostEvent,
                     job_dir: Path) -> dict[str, str]:
        host = dict(os.environ)
        env = {**host, **launch.env, "PATH": host.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "FLOAT_JOB_ID": launch.jobId, "FLOAT_INSTANCE_ID": self.instance_id,
               "FLOAT_HOST_SCRIPT": script, "FLOAT_HOST_EVENT": event,
               "FLOAT_JOB_DIR": str(job_dir), "FLOAT_HOST_ROOT": str(self.host_root)}
        if self.instance_type:
            env["FLOAT_INSTANCE_TYPE"] = self.instance_type
        return env
