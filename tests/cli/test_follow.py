"""`float log tail` against the real API (Chalice's local server on moto): the last lines, and
with --follow what the job prints next until it ends, each read only what is new."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.logs import LogShipper
from chalicelib.wire.status import JobStatus
from cli import follow
from tests.cli.conftest import LIVE_PASSWORD
from tests.functional.jobs_helpers import entry, seed_job
from tests.functional.test_logs import K8sLog


@pytest.fixture
def job(runtime, store, api, run, tmp_path: Path, monkeypatch) -> tuple[K8sLog, LogShipper]:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.05)
    seed_job(runtime, store, "job-1", JobStatus.EXECUTING, instance="i-0abc")
    assert run("login", "-a", api, "-u", "alice", "-p", LIVE_PASSWORD).code == 0
    log = K8sLog(tmp_path / "ctr.log")
    return log, LogShipper(runtime.s3, runtime.config.data_bucket, "job-1", log.path, carried=0)


def test_tail_prints_the_last_ten_lines_or_as_many_as_asked(job, run):
    log, shipper = job
    log.print("stdout", *(f"line {n}" for n in range(25)))
    shipper.ship()

    default = run("log", "tail", "stdout", "-j", "job-1")
    three = run("log", "-j", "job-1", "tail", "-n", "3", "stdout.autosave")

    assert default.code == 0, default.err
    assert default.out == "".join(f"line {n}\n" for n in range(15, 25))
    assert three.out == "line 22\nline 23\nline 24\n"


def test_follow_prints_what_the_job_prints_until_it_ends(job, run, runtime, store, monkeypatch):
    log, shipper = job
    log.print("stdout", "started")
    shipper.ship()
    reads: list[dict[str, str]] = []
    original = follow.Client.read_with_headers
    first_read = threading.Event()

    def recording(self, path, query):
        reads.append(query)
        try:
            return original(self, path, query)
        finally:
            first_read.set()

    monkeypatch.setattr(follow.Client, "read_with_headers", recording)

    def the_job() -> None:
        # The job prints on only once the tail has been read, however slow the CLI starts.
        assert first_read.wait(60)
        for step in range(3):
            time.sleep(0.2)
            log.print("stdout", f"step {step}")
            shipper.ship()
        current = store.get_job("job-1")
        store.transition_job(current, JobStatus.COMPLETED,
                             entry(runtime, current.status, JobStatus.COMPLETED, "exited 0"))

    writer = threading.Thread(target=the_job)
    writer.start()
    result = run("log", "tail", "--follow", "output", "-j", "job-1")
    writer.join()

    assert result.code == 0, result.err
    assert result.out == "started\nstep 0\nstep 1\nstep 2\n"
    # After the first read, each asks from where the last one ended: nothing is read twice.
    offsets = [int(query["offset"]) for query in reads[1:]]
    assert offsets == sorted(offsets) and offsets[0] == len("started\n")
    assert offsets[-1] == len(result.out)


def test_follow_of_a_finished_job_prints_its_tail_and_returns(job, run, runtime, store):
    log, shipper = job
    log.print("stdout", "all done")
    shipper.ship()
    current = store.get_job("job-1")
    store.transition_job(current, JobStatus.COMPLETED,
                         entry(runtime, current.status, JobStatus.COMPLETED, "exited 0"))

    result = run("log", "tail", "-f", "stdout", "-j", "job-1")

    assert (result.code, result.out) == (0, "all done\n")


def test_follow_that_is_interrupted_exits_130_without_a_traceback(job, run, monkeypatch):
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(follow.time, "sleep", interrupted)

    result = run("log", "tail", "--follow", "stdout", "-j", "job-1")

    assert result.code == 130
    assert result.err == "float: interrupted\n"


def test_tail_of_an_unknown_log_or_without_a_name_is_one_line(job, run):
    unknown = run("log", "tail", "nohup.out", "-j", "job-1")
    nameless = run("log", "tail", "-j", "job-1")
    follow_cat = run("log", "cat", "stdout", "--follow", "-j", "job-1")

    assert unknown.code == 1 and unknown.err.startswith("float: job job-1 has no log named")
    assert nameless.code == 2 and "float log tail" in nameless.err
    assert follow_cat.code == 2 and "--follow and -n go with float log tail" in follow_cat.err
    assert all(r.err.count("\n") == 1 for r in (unknown, nameless, follow_cat))


def test_follow_across_a_restore_from_an_older_checkpoint_shows_the_replaced_text(
        job, run, runtime, store, tmp_path: Path, monkeypatch):
    log, first = job
    log.print("stdout", "1", "2")
    first.ship()
    checkpointed = log.size()
    log.print("stdout", "3")
    first.ship()
    polls = 0
    real_sleep = time.sleep

    def the_job_moves(seconds: float) -> None:
        # While the follower waits: the job is restored from the checkpoint taken after "2",
        # prints again from there, and ends.
        nonlocal polls
        polls += 1
        if polls == 1:
            new = log.moved_to(tmp_path / "new.log", keep=checkpointed)
            new.print("stdout", "3 again")
            LogShipper(runtime.s3, runtime.config.data_bucket, "job-1", new.path,
                       carried=checkpointed).ship()
            current = store.get_job("job-1")
            store.transition_job(current, JobStatus.COMPLETED,
                                 entry(runtime, current.status, JobStatus.COMPLETED, "exited 0"))
        real_sleep(0.01)

    monkeypatch.setattr(follow.time, "sleep", the_job_moves)

    result = run("log", "tail", "--follow", "stdout", "-j", "job-1")

    assert result.code == 0, result.err
    assert result.out == "1\n2\n3\n3 again\n"
    assert result.err.startswith("float: stdout went back to byte 4 (the job was restored")
