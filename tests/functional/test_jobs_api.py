"""Submitting, showing, cancelling and reading logs of jobs through the real routes."""

import pytest

from chalicelib.wire.api import MAX_JOB_SCRIPT_BYTES
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job

FULL_SUBMIT = {
    "image": "docker.io/library/python:3.12",
    "jobScript": "#!/bin/sh\npython -c 'print(6*7)'\n",
    "cpu": "2:8",
    "mem": "4:16",
    "name": "answer",
    "env": {"STAGE": "align", "THREADS": "8"},
    "customTags": {"project": "genome", "cost-centre": "lab-7"},
    "dataVolumes": ["[size=60]:/mnt/scratch", "[mode=r]s3://inputs/run-1:/mnt/in",
                    "nfs://fs-1.local/export:/mnt/shared"],
    "vmPolicy": "[spotFirst=true,retryLimit=10,retryInterval=900s]",
    "migratePolicy": "[cpu.upperBoundRatio=80,mem.step=8,evadeOOM=true]",
    "timeLimit": "2h",
}


def test_a_submitted_job_shows_everything_that_was_asked_for(alice, runtime):
    submitted = alice.post("/v1/jobs", FULL_SUBMIT)
    assert submitted.status_code == 201, submitted.body
    job = alice.get(f"/v1/jobs/{submitted.json_body['id']}").json_body
    assert job["status"] == "Submitted" and job["user"] == "alice" and job["rc"] is None
    assert job["cpu"] == {"min": 2, "max": 8} and job["mem"] == {"min": 4, "max": 16}
    assert job["env"] == FULL_SUBMIT["env"] and job["customTags"] == FULL_SUBMIT["customTags"]
    assert [v["kind"] for v in job["dataVolumes"]] == ["block", "s3", "nfs"]
    assert job["dataVolumes"][1]["mode"] == "r"
    assert job["vmPolicy"] == {"spotOnly": False, "onDemand": False, "spotFirst": True,
                               "retryLimit": 10, "retryInterval": 900}
    assert job["migratePolicy"]["cpu"]["upperBoundRatio"] == 80
    assert job["migratePolicy"]["evadeOOM"] is True
    assert job["portMappings"] == [] and job["name"] == "answer"
    assert job["timeLimit"] == 7200
    assert [(h["from"], h["to"]) for h in job["history"]] == [(None, "Submitted")]
    script = runtime.s3.get_object(Bucket=runtime.config.data_bucket, Key=f"jobs/{job['id']}/script")
    assert script["Body"].read().decode() == FULL_SUBMIT["jobScript"]


@pytest.mark.parametrize("change, field, words", [
    ({"cpu": "8:2"}, "cpu", "larger than MAX"),
    ({"mem": "lots"}, "mem", "MIN:MAX"),
    ({"vmPolicy": "[spotOnly=true,onDemand=true]"}, "vmPolicy", "choose one"),
    ({"migratePolicy": "[cpu.bogus=1]"}, "migratePolicy", "cpu.bogus"),
    ({"dataVolumes": ["[size=60]:relative"]}, "dataVolumes.0", "absolute path"),
    ({"env": {"1BAD": "x"}}, "env", "'1BAD'"),
    ({"customTags": {"aws:owner": "x"}}, "customTags", "aws:"),
    ({"instType": "big"}, "instType", "instance type"),
    ({"timeLimit": "soon"}, "timeLimit", "duration such as"),
    ({"timeLimit": "0s"}, "timeLimit", "longer than zero"),
    ({"timeLimit": -5}, "timeLimit", "cannot be negative"),
    ({"image": ""}, "image", "at least 1"),
    ({"jobScript": ""}, "jobScript", "empty"),
    ({"cpus": 2}, "cpus", "not a known field"),
    ({"image": "notinlibrary"}, "image", "Application Library"),
])
def test_bad_submissions_are_refused_naming_the_field(alice, change, field, words):
    response = alice.post("/v1/jobs", {**FULL_SUBMIT, **change})
    assert response.status_code == 400
    assert response.json_body["field"] == field
    assert words in response.json_body["message"]
    assert alice.get("/v1/jobs").json_body["items"] == []


def test_a_missing_field_and_a_broken_body_are_named(alice):
    missing = alice.post("/v1/jobs", {"image": "a/b"})
    assert (missing.status_code, missing.json_body["field"]) == (400, "jobScript")
    assert "required" in missing.json_body["message"]
    broken = alice.post("/v1/jobs", "{not json")
    assert broken.status_code == 400 and "not valid JSON" in broken.json_body["message"]


def test_an_oversized_job_script_is_refused_with_the_limit(alice):
    response = alice.post("/v1/jobs", {"image": "a/b", "jobScript": "#" * (MAX_JOB_SCRIPT_BYTES + 1)})
    assert response.status_code == 400 and response.json_body["field"] == "jobScript"
    assert str(MAX_JOB_SCRIPT_BYTES) in response.json_body["message"]


def test_cancelling_a_job_without_an_instance_ends_it_at_once(alice):
    job_id = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    cancelled = alice.post(f"/v1/jobs/{job_id}/cancel", {"reason": "wrong input"})
    assert cancelled.status_code == 200 and cancelled.json_body["status"] == "Cancelled"
    last = cancelled.json_body["history"][-1]
    assert (last["from"], last["to"]) == ("Submitted", "Cancelled")
    assert last["reason"] == "cancelled by alice: wrong input"


def test_cancelling_a_running_job_asks_its_instance_to_stop_first(alice, runtime, store):
    seed_job(runtime, store, "running", JobStatus.EXECUTING, instance="i-0123")
    response = alice.post("/v1/jobs/running/cancel")
    assert response.json_body["status"] == "Cancelling"
    assert response.json_body["history"][-1]["instance"] == "i-0123"


@pytest.mark.parametrize("status", ["Completed", "Cancelled", "FailToComplete", "NoAvailableHost"])
def test_cancelling_a_finished_job_is_a_conflict_and_changes_nothing(alice, runtime, store, status):
    seed_job(runtime, store, "done", JobStatus(status))
    response = alice.post("/v1/jobs/done/cancel")
    assert response.status_code == 409
    assert f"{status} is final" in response.json_body["message"]
    assert store.get_job("done").status == JobStatus(status) and store.get_job("done").version == 1


def test_a_log_not_written_yet_says_so_and_an_unknown_name_is_no_log(alice):
    job_id = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    missing = alice.get(f"/v1/jobs/{job_id}/logs/stdout")
    assert missing.status_code == 404 and "has no stdout yet" in missing.json_body["message"]
    assert alice.get(f"/v1/jobs/{job_id}/logs").json_body == []
    unknown = alice.get(f"/v1/jobs/{job_id}/logs/secrets")
    assert unknown.status_code == 404 and "no log named" in unknown.json_body["message"]


def test_a_library_name_resolves_to_its_uri(alice):
    alice.post("/v1/images", {"name": "bwa", "uri": "quay.io/biocontainers/bwa:0.7.18"})
    job = alice.post("/v1/jobs", {**FULL_SUBMIT, "image": "bwa"}).json_body
    assert (job["image"], job["imageUri"]) == ("bwa", "quay.io/biocontainers/bwa:0.7.18")


def test_unknown_jobs_are_not_found(alice):
    for method, path in [("GET", "/v1/jobs/nope"), ("POST", "/v1/jobs/nope/cancel"),
                         ("GET", "/v1/jobs/nope/logs/stdout")]:
        response = alice.request(method, path)
        assert response.status_code == 404 and "nope" in response.json_body["message"]
