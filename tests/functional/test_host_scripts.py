"""A job's host scripts through the real routes and workflows: submitted and stored, their
runs on each host read back as `hostinit.log` / `hostterminate.log`, a failed hostInit on a
restore ending the job FailToExecute, a failed hostTerminate named in a Completed job's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.hostscripts import HostScripts
from chalicelib import executions
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.hostscripts import MAX_HOST_SCRIPT_BYTES
from chalicelib.wire.status import JobStatus
from tests.functional.test_launch_workflow import _launch, _submitted
from tests.functional.test_migrate_workflow import _kinds, _migrate
from tests.functional.workflow_helpers import move_ready as _move_ready
from tests.functional.workflow_helpers import running_instances, seed_running, simulated_agent

SUBMIT = {"image": "docker.io/library/busybox:latest", "jobScript": "echo hi\n",
          "hostInit": "#!/bin/sh\necho preparing $FLOAT_JOB_ID on $FLOAT_INSTANCE_ID\n",
          "hostTerminate": "echo tidying\n"}


def test_host_scripts_are_stored_beside_the_job_script_and_shown_by_size(alice, runtime):
    job = alice.post("/v1/jobs", SUBMIT).json_body
    shown = alice.get(f"/v1/jobs/{job['id']}").json_body
    assert shown["hostInitSize"] == len(SUBMIT["hostInit"].encode())
    assert shown["hostTerminateSize"] == len(SUBMIT["hostTerminate"].encode())
    assert "hostInit" not in shown and "hostTerminate" not in shown  # sizes, not the text
    bucket = runtime.config.data_bucket
    for name in ("hostInit", "hostTerminate"):
        body = runtime.s3.get_object(Bucket=bucket, Key=f"jobs/{job['id']}/{name}")["Body"]
        assert body.read().decode() == SUBMIT[name]
    plain = alice.post("/v1/jobs", {"image": SUBMIT["image"], "jobScript": "true"}).json_body
    assert (plain["hostInitSize"], plain["hostTerminateSize"]) == (None, None)


@pytest.mark.parametrize("field, text, words", [
    ("hostInit", "", "the hostInit script is empty"),
    ("hostTerminate", "#" * (MAX_HOST_SCRIPT_BYTES + 1),
     f"the hostTerminate script is {MAX_HOST_SCRIPT_BYTES + 1} bytes; the limit is "
     f"{MAX_HOST_SCRIPT_BYTES}"),
])
def test_a_bad_host_script_is_refused_naming_it(alice, field, text, words):
    response = alice.post("/v1/jobs", {**SUBMIT, field: text})
    assert response.status_code == 400
    assert response.json_body["field"] == field and words in response.json_body["message"]
    assert alice.get("/v1/jobs").json_body["items"] == []


def _hosts(runtime, tmp_path: Path, instance_id: str) -> HostScripts:
    return HostScripts(runtime.s3, runtime.config.data_bucket, instance_id, "c5.large",
                       tmp_path / instance_id)


def test_each_hosts_runs_read_back_in_order_under_a_header_naming_the_host(alice, runtime,
                                                                            tmp_path):
    job = alice.post("/v1/jobs", SUBMIT).json_body
    launch = JobLaunch(jobId=job["id"], imageUri=SUBMIT["image"], scriptKey="unused",
                       hostInitKey=f"jobs/{job['id']}/hostInit",
                       hostTerminateKey=f"jobs/{job['id']}/hostTerminate")
    first, second = _hosts(runtime, tmp_path, "i-first"), _hosts(runtime, tmp_path, "i-second")
    first.init(launch, tmp_path, "start")
    first.terminate(launch, tmp_path, "checkpoint")
    second.init(launch, tmp_path, "restore")

    text = alice.get(f"/v1/jobs/{job['id']}/logs/hostinit.log").body.decode()
    lines = text.splitlines()
    assert lines[0].startswith("==> hostInit on i-first (c5.large) at ")
    assert lines[0].endswith("before the job starts on this host <==")
    assert lines[1] == f"preparing {job['id']} on i-first"
    assert lines[2].startswith("==> exit code 0 after ")
    assert lines[3].startswith("==> hostInit on i-second (c5.large)")
    assert "before the job is restored on this host" in lines[3]
    assert lines[4] == f"preparing {job['id']} on i-second"
    assert len(lines) == 6
    terminated = alice.get(f"/v1/jobs/{job['id']}/logs/hostterminate.log").body.decode()
    assert terminated.splitlines()[1:2] == ["tidying"]
    names = [info["name"] for info in alice.get(f"/v1/jobs/{job['id']}/logs").json_body]
    assert names == ["hostinit.log", "hostterminate.log"]


def test_a_host_log_not_written_says_whether_the_job_has_that_script(alice):
    with_scripts = alice.post("/v1/jobs", SUBMIT).json_body["id"]
    waiting = alice.get(f"/v1/jobs/{with_scripts}/logs/hostinit.log")
    assert waiting.status_code == 404
    assert "its hostInit script has not run" in waiting.json_body["message"]
    plain = alice.post("/v1/jobs", {"image": SUBMIT["image"], "jobScript": "true"}).json_body
    none = alice.get(f"/v1/jobs/{plain['id']}/logs/hostterminate.log")
    assert none.status_code == 404 and "no hostTerminate script" in none.json_body["message"]


def test_a_failed_host_terminate_after_an_exit_is_in_the_reason_and_the_job_completed(flows):
    instance, _ = seed_running(flows, "tidy")
    failure = "its hostTerminate script exited with code 2 (its last line: umount: busy)"
    name, payload = executions.finish_start("tidy", instance, 0, host_terminate_failure=failure)
    result = flows.run("finish", name, payload)
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("tidy")
    assert job.status == JobStatus.COMPLETED and job.rc == 0
    assert job.history[-1].reason == f"the job exited with code 0; then {failure}"


def test_a_host_init_that_fails_on_a_restore_ends_the_job_fail_to_execute_at_once(flows):
    old, _, new_seen = _move_ready(flows, "prepped", True, "HostInitFailed")
    result = _migrate(flows, "prepped")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("prepped")
    assert job.status == JobStatus.FAIL_TO_EXECUTE
    assert job.history[-1].reason == (
        "the job's hostInit script failed on its new instance (HostInitFailed: simulated "
        "HostInitFailed)")
    # Not tried on another instance, nor rerun: every host would run the same script.
    assert [_kinds(s) for s in new_seen] == [["restore"]]
    assert running_instances(flows) == [] and flows.state(old) == "terminated"


def test_a_launch_names_the_host_scripts_and_a_failed_host_init_ends_fail_to_execute(flows):
    _submitted(flows, "prepare", vmPolicy={"onDemand": True})
    flows.store.record_fields(flows.store.get_job("prepare"), {
        "hostInitKey": "jobs/prepare/hostInit", "hostInitSize": 9,
        "hostTerminateKey": "jobs/prepare/hostTerminate", "hostTerminateSize": 5})
    seen: list = []
    simulated_agent(flows, None, "HostInitFailed", seen, job_id="prepare")
    assert _launch(flows, "prepare")["status"] == "SUCCEEDED"
    (run,) = seen
    assert (run.job.hostInitKey, run.job.hostTerminateKey) == (
        "jobs/prepare/hostInit", "jobs/prepare/hostTerminate")
    job = flows.store.get_job("prepare")
    assert job.status == JobStatus.FAIL_TO_EXECUTE
    assert job.history[-1].reason == ("the worker's agent could not start the job "
                                      "(HostInitFailed: simulated HostInitFailed)")
    assert running_instances(flows) == []
