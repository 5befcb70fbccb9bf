"""A job's log shipped in parts by the agent's shipper and read back through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from agent.logs import LogShipper
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job

STAMP = "2026-11-25T10:00:00.000000000+00:00"


class K8sLog:
    """A container's log file as podman writes it (k8s-file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def print(self, stream: str, *texts: str) -> None:
        with self.path.open("ab") as file:
            for text in texts:
                file.write(f"{STAMP} {stream} F {text}\n".encode())

    def write_raw(self, data: bytes) -> None:
        with self.path.open("ab") as file:
            file.write(data)

    def size(self) -> int:
        return self.path.stat().st_size

    def moved_to(self, path: Path, keep: int | None = None) -> K8sLog:
        """The file as a restore on another instance finds it: its first `keep` bytes."""
        data = self.path.read_bytes()
        path.write_bytes(data if keep is None else data[:keep])
        return K8sLog(path)


class RecordingS3:
    """An S3 client that records each put; while `failing`, a put fails, after reaching S3
    too when `lost_answer` (the reply lost on the way back)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.puts: list[tuple[str, bytes]] = []
        self.failing = False
        self.lost_answer = False

    def put_object(self, **kwargs: Any) -> Any:
        if self.failing and not self.lost_answer:
            raise EndpointConnectionError(endpoint_url="https://s3.invalid")
        self.puts.append((kwargs["Key"], kwargs["Body"]))
        answer = self._s3.put_object(**kwargs)
        if self.failing:
            raise EndpointConnectionError(endpoint_url="https://s3.invalid")
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


@pytest.fixture
def job(runtime, store):
    return seed_job(runtime, store, "job-1", JobStatus.EXECUTING, instance="i-0abc").id


@pytest.fixture
def s3(runtime):
    return RecordingS3(runtime.s3)


def shipper(runtime, s3, log: K8sLog, carried: int | None = 0, **extra: Any) -> LogShipper:
    return LogShipper(s3, runtime.config.data_bucket, "job-1", log.path, carried=carried, **extra)


def read(caller, stream: str) -> bytes:
    response = caller.get(f"/v1/jobs/job-1/logs/{stream}")
    assert response.status_code == 200, response.body
    return bytes(response.body)


def sizes(caller) -> list[tuple[str, int]]:
    return [(info["name"], info["size"]) for info in caller.get("/v1/jobs/job-1/logs").json_body]


def test_a_running_jobs_output_reads_back_whole_as_it_grows(alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    ship = shipper(runtime, s3, log)
    log.print("stdout", "one")
    log.print("stderr", "warning: low disk")
    ship.ship()
    assert read(alice, "stdout") == b"one\n" and read(alice, "stderr") == b"warning: low disk\n"
    log.print("stdout", "two", "three")
    ship.ship()
    assert read(alice, "stdout.autosave") == b"one\ntwo\nthree\n"
    response = alice.get("/v1/jobs/job-1/logs/stdout")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert sizes(alice) == [("stdout", 14), ("stderr", 18)]


def test_a_second_ship_of_an_unchanged_log_sends_nothing_and_a_grown_one_only_what_is_new(
        alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    log.print("stdout", *(f"line {n}" for n in range(1000)))
    ship = shipper(runtime, s3, log)
    ship.ship()
    sent = len(s3.puts)
    ship.ship()
    assert len(s3.puts) == sent
    log.print("stdout", "one more")
    ship.ship()
    assert [body for _, body in s3.puts[sent:]] == [b"one more\n"]
    assert read(alice, "stdout").endswith(b"line 999\none more\n")


def test_a_line_still_being_written_waits_for_its_newline(alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    log.print("stdout", "done")
    log.write_raw(f"{STAMP} stdout P hal".encode())
    ship = shipper(runtime, s3, log)
    ship.ship()
    assert read(alice, "stdout") == b"done\n"
    log.write_raw(f"f\n{STAMP} stdout F way\n".encode())
    ship.ship()
    assert read(alice, "stdout") == b"done\nhalfway\n"


def test_a_restored_job_on_a_new_instance_goes_on_without_sending_again_what_was_shipped(
        alice, runtime, s3, job, tmp_path):
    old = K8sLog(tmp_path / "old.log")
    old.print("stdout", *(f"step {n}" for n in range(1, 51)))
    shipper(runtime, s3, old).ship()
    carried = old.size()
    new = old.moved_to(tmp_path / "new.log")
    new.print("stdout", "step 51")
    new.print("stderr", "first complaint")
    before = len(s3.puts)
    shipper(runtime, s3, new, carried).ship()
    sent = {key.split("/")[3]: body for key, body in s3.puts[before:] if body}
    assert sent == {"stdout": b"step 51\n", "stderr": b"first complaint\n"}
    assert read(alice, "stdout") == b"".join(f"step {n}\n".encode() for n in range(1, 52))
    assert read(alice, "stderr") == b"first complaint\n"


def test_a_restore_from_an_older_checkpoint_reads_as_the_job_printed_it(
        alice, runtime, s3, job, tmp_path):
    old = K8sLog(tmp_path / "old.log")
    old.print("stdout", "1", "2")
    old.print("stderr", "a")
    first = shipper(runtime, s3, old)
    first.ship()
    checkpointed = old.size()
    old.print("stdout", "3", "4")
    old.print("stderr", "b")
    first.ship()
    # The newer checkpoint failed: the job is restored from the one taken after "2".
    new = old.moved_to(tmp_path / "new.log", keep=checkpointed)
    new.print("stdout", "3 again")
    shipper(runtime, s3, new, checkpointed).ship()
    assert read(alice, "stdout") == b"1\n2\n3 again\n"
    assert read(alice, "stderr") == b"a\n"
    assert sizes(alice) == [("stdout", 12), ("stderr", 2)]
    # The old instance, not yet gone, ships on: what it sends does not show.
    old.print("stdout", "5")
    first.ship()
    assert read(alice, "stdout") == b"1\n2\n3 again\n"


def test_a_rerun_from_the_start_shows_only_its_own_output(alice, runtime, s3, job, tmp_path):
    old = K8sLog(tmp_path / "old.log")
    old.print("stdout", "first try")
    shipper(runtime, s3, old).ship()
    new = K8sLog(tmp_path / "new.log")
    rerun = shipper(runtime, s3, new, carried=0)
    rerun.ship()
    missing = alice.get("/v1/jobs/job-1/logs/stdout")
    assert missing.status_code == 404 and "has no stdout yet" in missing.json_body["message"]
    assert sizes(alice) == []
    new.print("stdout", "second try")
    rerun.ship()
    assert read(alice, "stdout") == b"second try\n"


@pytest.mark.parametrize("lost_answer", [False, True], ids=["refused", "answer-lost"])
def test_a_failed_put_is_sent_again_as_the_same_part_and_nothing_is_lost_or_doubled(
        alice, runtime, s3, job, tmp_path, lost_answer):
    log = K8sLog(tmp_path / "ctr.log")
    ship = shipper(runtime, s3, log)
    ship.ship()
    log.print("stdout", "before the outage")
    s3.failing, s3.lost_answer = True, lost_answer
    with pytest.raises(EndpointConnectionError):
        ship.ship()
    log.print("stdout", "during the outage")
    failed_key = s3.puts[-1][0] if lost_answer else None
    s3.failing = False
    ship.ship()
    if failed_key is not None:
        assert s3.puts[-2][0] == failed_key
    assert read(alice, "stdout") == b"before the outage\nduring the outage\n"


def test_a_backlog_goes_in_bounded_parts_and_reads_back_whole(alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    log.print("stdout", *(f"row {n}" for n in range(200)))
    log.print("stderr", "x" * 600)  # longer than a chunk: read whole all the same
    shipper(runtime, s3, log, chunk_bytes=256).ship()
    bodies = [body for key, body in s3.puts if "/logs/stdout/" in key]
    assert len(bodies) > 10 and max(len(body) for body in bodies) <= 256
    assert read(alice, "stdout") == b"".join(f"row {n}\n".encode() for n in range(200))
    assert read(alice, "stderr") == b"x" * 600 + b"\n"
