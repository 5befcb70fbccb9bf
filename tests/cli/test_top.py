"""`float top -j ID` and the UTILIZATION line of `float show`, against the fake OpCenter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import usage
from tests.cli.fake_opcenter import job_json

MIB = 2**20
PATH = "/v1/jobs/job-1/utilization"


def point(second: int, cpu: float = 50.0, memory_mib: int = 300, **overrides: Any) -> dict:
    sample = {"time": f"2024-05-01T10:00:{second:02d}Z", "instanceId": "i-0abc",
              "instanceType": "c5.large", "seconds": 10.0, "vcpus": 2.0, "cpuRatio": cpu,
              "cpuDemandRatio": cpu + 5, "memoryBytes": memory_mib * MIB,
              "memoryPeakBytes": memory_mib * MIB, "memoryLimitBytes": 4096 * MIB,
              "memoryRatio": round(100 * memory_mib / 4096, 2), "swapBytes": 0,
              "memoryPressure": 0.25, "oomKills": 0}
    sample.update(overrides)
    return sample


def page(*seconds: int) -> dict:
    """The API's page: newest first."""
    return {"items": [point(s, cpu=float(s)) for s in sorted(seconds, reverse=True)]}


def test_top_prints_the_series_oldest_first_as_a_table(logged_in, run):
    logged_in.reply("GET", PATH, page(10, 20, 30))

    result = run("top", "-j", "job-1")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["TIME", "INSTANCE", "TYPE", "VCPUS", "CPU%", "DEMAND%", "MEM",
                                "LIMIT", "MEM%", "SWAP", "PRESSURE"]
    assert [line.split()[0] for line in lines[1:]] == [
        "2024-05-01T10:00:10Z", "2024-05-01T10:00:20Z", "2024-05-01T10:00:30Z"]
    assert lines[3].split() == ["2024-05-01T10:00:30Z", "i-0abc", "c5.large", "2", "30", "35",
                                "300", "MiB", "4.0", "GiB", "7", "0", "MiB", "0.2%"]
    assert logged_in.requests[-1].query == {"limit": "20"}


def test_top_asks_for_n_samples_and_json_is_a_list_oldest_first(logged_in, run):
    logged_in.reply("GET", PATH, page(10, 20))

    result = run("top", "-j", "job-1", "-n", "2", "--format", "json")

    assert result.code == 0, result.err
    points = json.loads(result.out)
    assert [p["time"][-3:] for p in points] == ["10Z", "20Z"]
    assert points[0]["memoryBytes"] == 300 * MIB and points[0]["oomKills"] == 0
    assert logged_in.requests[-1].query == {"limit": "2"}


def test_a_job_without_samples_says_so(logged_in, run):
    logged_in.reply("GET", PATH, {"items": []})

    result = run("top", "-j", "job-1")

    assert result.code == 0 and result.out == "no utilization samples yet for job job-1\n"


@pytest.mark.parametrize(("argv", "complaint"), [
    (("-n", "0"), "-n must be from 1 to 1000 samples, got 0"),
    (("-n", "5000"), "-n must be from 1 to 1000 samples, got 5000"),
    (("--watch", "-F", "json"), "--watch prints a table as samples arrive; it does not go with "
                                "--format json"),
    (("--watch", "0"), "--watch needs at least 1 second between reads, got 0"),
])
def test_bad_flags_are_refused_before_any_request(logged_in, run, argv, complaint):
    result = run("top", "-j", "job-1", *argv)

    assert result.code != 0 and result.out == ""
    assert result.err.strip() == f"float: {complaint}"
    assert logged_in.requests == []


def test_an_unknown_job_is_the_servers_message(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/nope/utilization",
                    {"error": "NotFound", "message": "job nope does not exist"}, status=404)

    result = run("top", "-j", "nope")

    assert result.code != 0 and "job nope does not exist" in result.err


def test_watch_prints_each_new_sample_once_until_the_job_ends(logged_in, run, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(usage.time, "sleep", waits.append)
    logged_in.reply("GET", PATH, page(10, 20))
    logged_in.reply("GET", PATH, page(10, 20, 30))
    logged_in.reply("GET", PATH, page(10, 20, 30, 40, 50))
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(status="Executing"))
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(status="Completed", rc=0))

    result = run("top", "-j", "job-1", "--watch", "2")

    assert result.code == 0, result.err
    times = [line.split()[0] for line in result.out.splitlines()[1:]]
    assert times == [f"2024-05-01T10:00:{s}Z" for s in (10, 20, 30, 40, 50)]
    # Rows printed later line up with the first table's columns.
    header = result.out.splitlines()[0]
    assert all(line.index("c5.large") == header.index("TYPE")
               for line in result.out.splitlines()[1:])
    assert waits == [2]


def test_show_has_a_utilization_line(logged_in, run):
    summary = {"time": "2024-05-01T10:06:00Z", "instanceId": "i-0abc",
               "instanceType": "c5.large", "vcpus": 2.0, "cpuRatio": 91.4,
               "cpuDemandRatio": 99.0, "memoryBytes": 390 * MIB, "memoryLimitBytes": 512 * MIB,
               "memoryRatio": 76.17, "memoryPeakBytes": 400 * MIB, "swapBytes": 0}
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(utilization=summary))

    result = run("show", "-j", "job-1", "-F", "table")

    assert result.code == 0, result.err
    [line] = [line for line in result.out.splitlines() if line.startswith("UTILIZATION:")]
    assert line.split(None, 1)[1] == (
        "cpu 91% (demand 99%) of 2 vCPUs, memory 390 MiB of 512 MiB (76%), peak 400 MiB "
        "at 2024-05-01T10:06:00Z (float top -j job-1 for the series)")
