"""Every failure is one `float: ...` line on stderr: usage errors exit 2, the rest exit 1."""

from __future__ import annotations

import socket

import pytest


def test_an_unreachable_opcenter_is_one_line(run):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = run("login", "-a", f"127.0.0.1:{port}", "-u", "alice", "-p", "pw")

    assert result.code == 1
    assert result.err.startswith(f"float: cannot reach the OpCenter at http://127.0.0.1:{port}: ")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


@pytest.mark.parametrize("argv", [
    ["submit", "-i", "bwa"],
    ["frobnicate"],
    ["list", "--format", "xml"],
    [],
    ["log", "-j", "job-1", "tail"],
])
def test_usage_errors_are_one_line_and_exit_2(run, argv):
    result = run(*argv)

    assert result.code == 2
    assert result.err.startswith("float: ") and result.err.count("\n") == 1
    assert result.out == ""


def test_a_reply_that_is_not_the_api_is_one_line(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", {"hello": "world"})

    result = run("show", "-j", "job-1")

    assert result.code == 1
    assert result.err.startswith("float: unexpected reply from the OpCenter to GET /v1/jobs/job-1")
    assert result.err.count("\n") == 1


def test_a_bad_address_is_a_usage_error(run):
    result = run("login", "-a", "ftp://example.com", "-u", "alice", "-p", "pw")

    assert (result.code, result.err.count("\n")) == (2, 1)
    assert "not an OpCenter address" in result.err
