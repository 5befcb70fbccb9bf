"""A job's host scripts (`--hostInit`, `--hostTerminate`): what they are called, where they and
their output lie in S3, and how big they may be.

    jobs/JOB/hostInit                     the script as submitted (hostTerminate likewise)
    jobs/JOB/logs/hostinit/STAMP-INSTANCE  one run of it on one host: a header line naming the
                                          host, its output (stdout and stderr), a last line
                                          with how it ended

A run's object is written again as the script prints, so it can be read while it runs. STAMP
is the UTC time the run began (`20261202T094327.123456Z`), so the runs of every host a job
visited sort in the order they ran, and the log reads as one text.
"""

from __future__ import annotations

from typing import Literal

HostScript = Literal["hostInit", "hostTerminate"]
HOST_INIT: HostScript = "hostInit"
HOST_TERMINATE: HostScript = "hostTerminate"
HOST_SCRIPTS: tuple[HostScript, ...] = (HOST_INIT, HOST_TERMINATE)

# A host script prepares or tidies a host; like the job script it travels in the submit body.
MAX_HOST_SCRIPT_BYTES = 1024 * 1024

# The log each script's output goes to, as `float log ls` names it.
LOG_NAMES: dict[HostScript, str] = {HOST_INIT: "hostinit.log",
                                    HOST_TERMINATE: "hostterminate.log"}
# Of one run's output the last this many bytes are kept: the end is where a failure shows.
MAX_RUN_LOG_BYTES = 1024 * 1024


def script_key(job_id: str, script: HostScript) -> str:
    return f"jobs/{job_id}/{script}"


def log_prefix(job_id: str, script: HostScript) -> str:
    return f"jobs/{job_id}/logs/{script.lower()}/"


def run_key(job_id: str, script: HostScript, stamp: str, instance_id: str) -> str:
    return f"{log_prefix(job_id, script)}{stamp}-{instance_id}"


def script_of_log(name: str) -> HostScript | None:
    """The script whose log is called `name` (`hostinit.log`, or `hostInit`), if any."""
    for script, log_name in LOG_NAMES.items():
        if name in (log_name, script, log_name.removesuffix(".log")):
            return script
    return None


def check_script(script: HostScript, text: str) -> str:
    """`text` if it can be a host script; else ValueError saying why."""
    size = len(text.encode())
    if size == 0:
        raise ValueError(f"the {script} script is empty")
    if size > MAX_HOST_SCRIPT_BYTES:
        raise ValueError(f"the {script} script is {size} bytes; the limit is "
                         f"{MAX_HOST_SCRIPT_BYTES}")
    return text
