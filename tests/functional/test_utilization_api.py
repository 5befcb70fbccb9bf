"""GET /v1/jobs/{id}/utilization: the job's series, newest first, page by page, to its owner and
admins only, with bad paging refused by name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import UtilizationPoint
from tests.functional.jobs_helpers import seed_job

MIB = 2**20


@pytest.fixture
def job(runtime, store):
    job = seed_job(runtime, store, "job-1", JobStatus.EXECUTING, instance="i-0abc")
    start = runtime.clock() - timedelta(minutes=5)
    for n in range(5):
        at = (start + timedelta(seconds=10 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        store.record_utilization(job.id, UtilizationPoint(
            time=at, instanceId="i-0abc", instanceType="c5.large", seconds=10, vcpus=2,
            cpuRatio=10.0 * n, cpuDemandRatio=12.0 * n, memoryBytes=(100 + n) * MIB,
            memoryPeakBytes=(110 + n) * MIB, memoryLimitBytes=400 * MIB, memoryPressure=0.5,
            oomKills=0))
    return job


def test_the_series_comes_newest_first_with_its_figures(alice, job):
    response = alice.get("/v1/jobs/job-1/utilization")
    assert response.status_code == 200, response.body
    items = response.json_body["items"]
    assert [item["cpuRatio"] for item in items] == [40.0, 30.0, 20.0, 10.0, 0.0]
    newest = items[0]
    assert newest["instanceId"] == "i-0abc" and newest["instanceType"] == "c5.large"
    assert newest["memoryBytes"] == 104 * MIB and newest["memoryPeakBytes"] == 114 * MIB
    assert newest["memoryRatio"] == 26.0 and newest["memoryLimitBytes"] == 400 * MIB
    assert newest["cpuDemandRatio"] == 48.0 and newest["memoryPressure"] == 0.5
    assert newest["swapBytes"] == 0 and newest["oomKills"] == 0 and newest["vcpus"] == 2
    assert "nextToken" not in response.json_body or response.json_body["nextToken"] is None


def test_pages_read_on_with_the_token_and_end(alice, job):
    first = alice.get("/v1/jobs/job-1/utilization?limit=2").json_body
    second = alice.get(f"/v1/jobs/job-1/utilization?limit=2&nextToken={first['nextToken']}")
    third = alice.get("/v1/jobs/job-1/utilization?limit=2&nextToken="
                      f"{second.json_body['nextToken']}").json_body
    seen = [i["cpuRatio"] for page in (first, second.json_body, third) for i in page["items"]]
    assert seen == [40.0, 30.0, 20.0, 10.0, 0.0]
    assert third.get("nextToken") is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten", "limit=-1"])
def test_a_bad_limit_is_refused_by_name(alice, job, query):
    response = alice.get(f"/v1/jobs/job-1/utilization?{query}")
    assert response.status_code == 400
    assert "limit must be a whole number from 1 to 1000" in response.json_body["message"]


def test_a_bad_token_is_refused(alice, job):
    response = alice.get("/v1/jobs/job-1/utilization?nextToken=garbage")
    assert response.status_code == 400 and "nextToken" in response.json_body["message"]


def test_a_job_with_no_samples_has_an_empty_series(alice, runtime, store):
    seed_job(runtime, store, "job-2", JobStatus.STARTING)
    response = alice.get("/v1/jobs/job-2/utilization")
    assert response.status_code == 200 and response.json_body["items"] == []


def test_only_the_owner_and_admins_see_it(alice, bob, admin, job):
    assert admin.get("/v1/jobs/job-1/utilization").status_code == 200
    hidden = bob.get("/v1/jobs/job-1/utilization")
    assert hidden.status_code == 404 and "job job-1 does not exist" in hidden.json_body["message"]
    missing = alice.get("/v1/jobs/nope/utilization")
    assert missing.status_code == 404 and "job nope does not exist" in missing.json_body["message"]
