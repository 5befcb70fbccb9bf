"""`float submit --hostInit FILE --hostTerminate FILE`, and how `float show` tells of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.wire.hostscripts import MAX_HOST_SCRIPT_BYTES
from tests.cli.fake_opcenter import job_json


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "align.sh"
    path.write_text("bwa mem ref.fa reads.fq > out.sam\n")
    return path


def test_submit_sends_the_text_of_both_host_scripts(logged_in, run, script: Path, tmp_path):
    init = tmp_path / "init.sh"
    init.write_text("#!/bin/sh\nmount -t nfs fs:/ref /mnt/ref\n")
    terminate = tmp_path / "terminate.sh"
    terminate.write_text("umount /mnt/ref\n")
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "--hostInit", str(init),
                 "--hostTerminate", str(terminate))

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {
        "image": "bwa", "jobScript": script.read_text(), "hostInit": init.read_text(),
        "hostTerminate": terminate.read_text()}


def test_an_unreadable_host_script_is_one_line_and_nothing_is_sent(logged_in, run, script,
                                                                   tmp_path):
    missing = tmp_path / "nope.sh"

    result = run("submit", "-i", "bwa", "-j", str(script), "--hostInit", str(missing))

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"float: cannot read the hostInit script {missing}")
    assert logged_in.requests == []


def test_a_host_script_over_the_limit_is_refused_before_any_request(logged_in, run, script,
                                                                    tmp_path):
    big = tmp_path / "big.sh"
    big.write_bytes(b"#" * (MAX_HOST_SCRIPT_BYTES + 1))

    result = run("submit", "-i", "bwa", "-j", str(script), "--hostTerminate", str(big))

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert f"the hostTerminate script {big} is {MAX_HOST_SCRIPT_BYTES + 1} bytes" in result.err
    assert logged_in.requests == []


def test_an_empty_host_script_is_named_and_nothing_is_sent(logged_in, run, script, tmp_path):
    empty = tmp_path / "empty.sh"
    empty.write_text("")

    result = run("submit", "-i", "bwa", "-j", str(script), "--hostInit", str(empty))

    assert result.code != 0
    assert result.err.count("\n") == 1
    assert "hostInit" in result.err and "empty" in result.err
    assert logged_in.requests == []


def test_show_tells_the_size_of_each_host_script_and_where_its_output_is(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(hostInitSize=52, hostTerminateSize=None))

    result = run("show", "-j", "job-1", "-F", "table")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    (init,) = [line for line in lines if line.startswith("HOST INIT")]
    assert "52 bytes" in init and "hostinit.log" in init
    assert not any(line.startswith("HOST TERMINATE") for line in lines)
