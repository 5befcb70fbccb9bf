"""A job's log read from a byte offset or as its last lines, as `float log tail` reads it:
only what is asked for comes back, with headers saying where it lies in the stream."""

from __future__ import annotations

import pytest

from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job
from tests.functional.test_logs import K8sLog, RecordingS3, shipper


@pytest.fixture
def job(runtime, store):
    return seed_job(runtime, store, "job-1", JobStatus.EXECUTING, instance="i-0abc").id


@pytest.fixture
def s3(runtime):
    return RecordingS3(runtime.s3)


def read(caller, query: str, stream: str = "stdout") -> tuple[bytes, dict[str, int]]:
    response = caller.get(f"/v1/jobs/job-1/logs/{stream}?{query}")
    assert response.status_code == 200, response.body
    headers = {name: int(response.headers[f"X-Log-{name}"])
               for name in ("Offset", "End", "Size", "Epoch", "Epoch-Start")}
    return bytes(response.body), headers


def test_reading_from_an_offset_gives_only_what_came_after_it_across_parts(
        alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    ship = shipper(runtime, s3, log)
    log.print("stdout", "one", "two")
    ship.ship()
    log.print("stdout", "three")
    ship.ship()

    body, headers = read(alice, "offset=4")

    assert body == b"two\nthree\n"
    assert (headers["Offset"], headers["End"], headers["Size"]) == (4, 14, 14)
    assert read(alice, "offset=14")[0] == b""
    assert read(alice, "offset=99")[1]["Offset"] == 14


def test_the_last_lines_are_the_tail_of_the_stream_and_say_where_they_begin(
        alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    ship = shipper(runtime, s3, log)
    for number in range(30):
        log.print("stdout", f"line {number}")
        ship.ship()

    body, headers = read(alice, "lines=3")

    assert body == b"line 27\nline 28\nline 29\n"
    assert headers["End"] == headers["Size"] and headers["Offset"] == headers["Size"] - len(body)
    assert read(alice, "lines=1000")[0] == "".join(f"line {n}\n" for n in range(30)).encode()


def test_a_stream_not_written_yet_reads_as_empty_from_an_offset(alice, job):
    body, headers = read(alice, "offset=0", "stderr.autosave")

    assert body == b"" and headers["Size"] == 0
    # read whole, it still says it has none
    assert alice.get("/v1/jobs/job-1/logs/stderr").status_code == 404


def test_an_offset_inside_a_character_begins_after_it(alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    log.print("stdout", "größe")
    shipper(runtime, s3, log).ship()

    body, headers = read(alice, "offset=3")  # the second byte of ö

    assert body == "ße\n".encode() and headers["Offset"] == 4


def test_a_restore_from_an_older_checkpoint_says_where_the_new_text_begins(
        alice, runtime, s3, job, tmp_path):
    old = K8sLog(tmp_path / "old.log")
    old.print("stdout", "1", "2")
    first = shipper(runtime, s3, old)
    first.ship()
    checkpointed = old.size()
    old.print("stdout", "3")
    first.ship()
    _, before = read(alice, "offset=0")

    new = old.moved_to(tmp_path / "new.log", keep=checkpointed)
    new.print("stdout", "3 again")
    shipper(runtime, s3, new, checkpointed).ship()
    body, after = read(alice, f"offset={before['End']}")

    assert before["End"] == 6 and after["Epoch"] != before["Epoch"]
    assert after["Epoch-Start"] == 4
    assert read(alice, f"offset={after['Epoch-Start']}")[0] == b"3 again\n"


def test_output_is_the_standard_output(alice, runtime, s3, job, tmp_path):
    log = K8sLog(tmp_path / "ctr.log")
    log.print("stdout", "hello")
    log.print("stderr", "oops")
    shipper(runtime, s3, log).ship()

    assert read(alice, "offset=0", "output")[0] == b"hello\n"


@pytest.mark.parametrize("query, field", [
    ("offset=-1", "offset"), ("offset=ten", "offset"), ("lines=0", "lines"),
    ("lines=100001", "lines"), ("offset=0&lines=3", "lines")])
def test_a_bad_offset_or_line_count_is_refused_naming_it(alice, job, query, field):
    response = alice.get(f"/v1/jobs/job-1/logs/stdout?{query}")

    assert response.status_code == 400
    assert response.json_body["field"] == field and field in response.json_body["message"]


def test_an_unknown_log_name_lists_the_names_there_are(alice, job):
    response = alice.get("/v1/jobs/job-1/logs/nohup.out?offset=0")

    assert response.status_code == 404
    assert "stdout, stderr, output" in response.json_body["message"]
