"""Calls a job makes on the OpCenter from inside its container: `float migrate` and `float show`
on itself (programmatic migration, say after loading its data), and `float secret get NAME` of
its owner's secrets (nf-float's job script reads its AWS keys so).

The container never sees a credential. The `float` in it
(injob/usr/local/bin/float) drops its arguments into a directory the agent shares with the
container; the agent runs the real float CLI with the job's own token, which the OpCenter
accepts for that one job only, and hands back what the CLI printed and its exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools import Logger

logger = Logger(service="openfloat-agent")

# Where the shared directory appears inside the container.
CONTROL_IN_CONTAINER = "/.openfloat"
# Files laid over the container's root: the in-job float at /usr/local/bin/float, and at
# /opt/memverge/bin/float where MMCloud's job scripts call it. A tree, as podman cp creates no
# missing directories (a busybox image has no /usr/local/bin).
IN_JOB_TREE = Path(__file__).resolve().parent / "injob"
# What a job may ask about itself; everything else needs a user's login.
ALLOWED = frozenset({"migrate", "show", "secret"})
# Of `float secret`, a job may only read.
SECRET_ALLOWED = frozenset({"get"})
# The OpCenter address a job script may pass (`-a $FLOAT_ADDR`): the agent knows where its
# OpCenter is, and the job's token works there only.
_ADDRESS_FLAGS = ("-a", "--address")
CLI_TIMEOUT_SECONDS = 60


def control_dir(job_dir: Path) -> Path:
    """The job's shared directory on this host, with its requests/ and responses/."""
    control = job_dir / "control"
    for sub in ("requests", "responses"):
        (control / sub).mkdir(parents=True, exist_ok=True)
        # The job may run as any user inside its container.
        (control / sub).chmod(0o1777)
    return control


@dataclass
class JobCalls:
    """Serves one job's calls: `serve()` answers every request waiting in its directory."""

    control: Path
    job_id: str
    api_url: str
    token: Callable[[], str]

    def serve(self) -> int:
        """Answer each waiting request; how many were answered."""
        answered = 0
        for request in sorted((self.control / "requests").glob("*.args")):
            name = request.name.removesuffix(".args")
            try:
                args = [a.decode(errors="replace") for a in request.read_bytes().split(b"\0")[:-1]]
            except OSError:
                continue
            request.unlink(missing_ok=True)
            code, out, err = self._run(args)
            responses = self.control / "responses"
            (responses / f"{name}.out").write_text(out)
            (responses / f"{name}.err").write_text(err)
            # Written last: the in-job float reads the others once this exists.
            done = responses / f"{name}.done"
            (responses / f"{name}.tmp").write_text(f"{code}\n")
            (responses / f"{name}.tmp").rename(done)
            logger.info("job call answered", extra={"job_id": self.job_id,
                                                    "call": args[:1], "rc": code})
            answered += 1
        return answered

    def _run(self, args: list[str]) -> tuple[int, str, str]:
        args = without_address(args)
        if not args or args[0] not in ALLOWED:
            given = args[0] if args else "nothing"
            return 2, "", ("float: inside a job only migrate and show (on the job itself) and "
                           f"secret get work; got {given}\n")
        if args[0] == "secret" and (len(args) < 2 or args[1] not in SECRET_ALLOWED):
            given = args[1] if len(args) > 1 else "nothing"
            return 2, "", f"float: inside a job only secret get works; got secret {given}\n"
        with tempfile.TemporaryDirectory(prefix="openfloat-call-") as home:
            env = {**os.environ, "FLOAT_ADDRESS": self.api_url, "FLOAT_TOKEN": self.token(),
                   "FLOAT_JOB_ID": self.job_id, "FLOAT_CONFIG_DIR": home}
            # Without -j the CLI takes FLOAT_JOB_ID; with another job's id the OpCenter
            # refuses this token, which works for this job only.
            command = [sys.executable, "-m", "cli", *args]
            try:
                result = subprocess.run(command, env=env, capture_output=True, text=True,
                                        timeout=CLI_TIMEOUT_SECONDS, check=False)
            except subprocess.TimeoutExpired:
                return 1, "", f"float: the OpCenter did not answer within {CLI_TIMEOUT_SECONDS} s\n"
        return result.returncode, result.stdout, result.stderr


def without_address(args: list[str]) -> list[str]:
    """The arguments without `-a ADDR`, `--address ADDR` or `--address=ADDR`."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _ADDRESS_FLAGS:
            skip = True
        elif not arg.startswith("--address="):
            kept.append(arg)
    return kept
