"""The agent's host script runner: exit codes, time limits, output, environment, and the
failure a job's history quotes. Scripts run for real under /bin/sh; S3 is a dict."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agent.hostscripts import HostScripts, ScriptRun, last_line, run_script, tail
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.failures import HostInitFailed, JobStartFailed


class DictS3:
    """Just what the runner asks of S3: objects by key."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803
        self.objects[Key] = Body
        self.puts.append(Key)

    def logs(self, prefix: str) -> list[str]:
        return [self.objects[k].decode() for k in sorted(self.objects) if k.startswith(prefix)]


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script"
    path.write_text(text)
    path.chmod(0o700)
    return path


def _run(tmp_path: Path, text: str, limit: float = 10, **extra: Any) -> tuple[int | None, str]:
    output = tmp_path / "output"
    code = run_script(_script(tmp_path, text), env={"PATH": os.environ["PATH"]}, cwd=tmp_path,
                      limit=limit, output=output, **extra)
    return code, output.read_text()


def _alive(pid: int) -> bool:
    """Running, not gone nor a zombie waiting for a parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_script_without_a_shebang_runs_under_sh_with_both_streams_in_its_output(tmp_path):
    code, output = _run(tmp_path, "echo out\necho err >&2\nexit 4\n")
    assert code == 4
    assert output == "out\nerr\n"


def test_a_shebang_picks_the_interpreter(tmp_path):
    code, output = _run(tmp_path, "#!/bin/sh -e\necho before\nfalse\necho never\n")
    assert (code, output) == (1, "before\n")


def test_a_script_past_its_limit_is_killed_with_what_it_started(tmp_path):
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    code, output = _run(tmp_path, f"sleep 300 &\necho $! > {marker}\necho waiting\nwait\n",
                        limit=0.5, grace=0.5)
    assert code is None and output == "waiting\n"
    assert time.monotonic() - started < 10
    child = int(marker.read_text())
    # SIGKILL was sent; it lands when the kernel next schedules the child.
    gone_by = time.monotonic() + 5
    while _alive(child) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_daemon_left_by_a_script_that_exited_is_not_waited_for(tmp_path):
    started = time.monotonic()
    code, _ = _run(tmp_path, "sleep 30 > /dev/null 2>&1 &\necho $! > pid\nexit 0\n")
    assert code == 0 and time.monotonic() - started < 10
    daemon = int((tmp_path / "pid").read_text())
    assert _alive(daemon)
    os.kill(daemon, 9)


def test_progress_is_called_while_a_script_runs(tmp_path):
    calls: list[float] = []
    code, _ = _run(tmp_path, "sleep 0.5\n", progress=lambda: calls.append(1), every=0.1)
    assert code == 0 and len(calls) >= 2


def test_the_failure_quotes_the_exit_and_the_last_line_with_text():
    failed = ScriptRun("hostInit", 3, 0.2, 300, "mount: permission denied")
    assert not failed.ok
    assert failed.failure() == ("its hostInit script exited with code 3 "
                                "(its last line: mount: permission denied)")
    killed = ScriptRun("hostTerminate", None, 60.0, 60, "")
    assert killed.failure() == ("its hostTerminate script did not finish within its time "
                                "limit of 60 s and was killed (it printed nothing)")
    assert ScriptRun("hostInit", 0, 1.25, 300, "").outcome() == "exit code 0 after 1.2 s"


def test_the_last_line_skips_blank_ones_and_a_long_output_keeps_its_end(tmp_path):
    output = tmp_path / "output"
    output.write_bytes(b"x" * 5000 + b"\nfinal words\n\n  \n")
    assert last_line(output) == "final words"
    kept = tail(output, limit=100)
    assert kept.startswith(b"[... ") and kept.endswith(b"final words\n\n  \n")
    assert len(kept.split(b"\n", 1)[1]) == 100


def _launch(s3: DictS3, init: str | None = None, terminate: str | None = None,
            **extra: Any) -> JobLaunch:
    keys = {}
    for name, text in (("hostInit", init), ("hostTerminate", terminate)):
        if text is not None:
            s3.objects[f"jobs/job-1/{name}"] = text.encode()
            keys[f"{name}Key"] = f"jobs/job-1/{name}"
    return JobLaunch(jobId="job-1", imageUri="busybox", scriptKey="jobs/job-1/script",
                     **keys, **extra)


def _hosts(s3: DictS3, tmp_path: Path, **limits: Any) -> HostScripts:
    return HostScripts(s3, "bucket", "i-one", "m5.large", tmp_path / "work", **limits)


def test_host_init_sees_the_job_and_host_in_its_environment_and_a_scratch_dir(tmp_path):
    s3 = DictS3()
    launch = _launch(s3, init='echo "$FLOAT_JOB_ID $FLOAT_INSTANCE_ID $FLOAT_INSTANCE_TYPE '
                              '$FLOAT_HOST_SCRIPT $FLOAT_HOST_EVENT $FLOAT_JOB_DIR $REF"\n'
                              'pwd > "$FLOAT_JOB_DIR/cwd"\n',
                     env={"REF": "hg38", "PATH": "/nowhere"})
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    run = _hosts(s3, tmp_path).init(launch, job_dir, "start")
    assert run is not None and run.ok
    (log,) = s3.logs("jobs/job-1/logs/hostinit/")
    assert log.splitlines()[1] == f"job-1 i-one m5.large hostInit start {job_dir} hg38"
    scratch = Path((job_dir / "cwd").read_text().strip())
    assert scratch.parent.parent == tmp_path / "work" and not scratch.exists()


def test_a_failing_host_init_raises_a_start_failure_naming_exit_and_last_line(tmp_path):
    s3 = DictS3()
    launch = _launch(s3, init="echo checking\necho 'no licence server' >&2\nexit 7\n")
    with pytest.raises(HostInitFailed) as failed:
        _hosts(s3, tmp_path).init(launch, tmp_path, "restore")
    assert isinstance(failed.value, JobStartFailed)
    assert failed.value.message == ("job job-1 on i-one: its hostInit script exited with "
                                    "code 7 (its last line: no licence server)")
    (log,) = s3.logs("jobs/job-1/logs/hostinit/")
    assert log.splitlines()[-1] == "==> exit code 7 after " + log.split("after ")[-1].strip()


def test_a_host_init_past_its_limit_fails_and_its_log_says_it_was_killed(tmp_path):
    s3 = DictS3()
    launch = _launch(s3, init="echo slow\nsleep 60\n")
    with pytest.raises(HostInitFailed, match="did not finish within its time limit of 0.5 s"):
        _hosts(s3, tmp_path, init_seconds=0.5).init(launch, tmp_path, "start")
    (log,) = s3.logs("jobs/job-1/logs/hostinit/")
    assert log.splitlines()[1:] == [
        "slow", "==> killed: it did not finish within its time limit of 0.5 s <=="]


def test_host_terminate_runs_once_a_visit_and_a_failure_is_returned_not_raised(tmp_path):
    s3 = DictS3()
    launch = _launch(s3, init="true\n", terminate="echo tidy >> $FLOAT_JOB_DIR/count\nexit 2\n")
    hosts = _hosts(s3, tmp_path)
    first = hosts.terminate(launch, tmp_path, "exit")
    again = hosts.terminate(launch, tmp_path, "exit")
    assert first is again and first is not None and first.exit_code == 2
    assert (tmp_path / "count").read_text() == "tidy\n"
    hosts.init(launch, tmp_path, "restore")  # the job is back: a new visit
    hosts.terminate(launch, tmp_path, "cancel")
    assert (tmp_path / "count").read_text() == "tidy\ntidy\n"
    assert len(s3.logs("jobs/job-1/logs/hostterminate/")) == 2


def test_a_job_without_host_scripts_runs_nothing(tmp_path):
    s3 = DictS3()
    hosts = _hosts(s3, tmp_path)
    assert hosts.init(_launch(s3), tmp_path, "start") is None
    assert hosts.terminate(_launch(s3), tmp_path, "exit") is None
    assert s3.puts == []


def test_a_host_init_that_cannot_be_fetched_is_a_named_start_failure(tmp_path):
    class Refusing(DictS3):
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}},
                              "GetObject")

    s3 = Refusing()
    launch = _launch(s3, init="true\n")
    with pytest.raises(HostInitFailed, match="could not be fetched or run: .*AccessDenied"):
        _hosts(s3, tmp_path).init(launch, tmp_path, "start")
