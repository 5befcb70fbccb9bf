"""`float modify`, `rerun`, `version`, `status`, `release sync`, and `cancel` of a job that has
already ended, against the fake OpCenter."""

from __future__ import annotations

import json

import pytest
import yaml

from chalicelib.wire.api import RELEASE
from tests.cli.fake_opcenter import job_json

HEALTH = {"status": "ok", "version": "v1", "release": RELEASE}


def test_modify_sends_the_mmcloud_strings_and_prints_the_job(logged_in, run):
    logged_in.reply("PATCH", "/v1/jobs/job-1", job_json(
        vmPolicy={"spotOnly": False, "onDemand": True, "spotFirst": False, "retryLimit": None,
                  "retryInterval": None},
        migratePolicy={"cpu": {"upperBoundRatio": 70}, "mem": {}, "evadeOOM": True}))

    result = run("modify", "-j", "job-1", "--vmPolicy", "[onDemand=true]", "--migratePolicy",
                 "[cpu.upperBoundRatio=70,evadeOOM=true]", "--addCustomTag", "run:r2",
                 "--customTag", "stage:align", "--removeCustomTag", "team", "-F", "table")

    assert result.code == 0, result.err
    [request] = logged_in.requests
    assert (request.method, request.path) == ("PATCH", "/v1/jobs/job-1")
    assert request.body == {"vmPolicy": "[onDemand=true]",
                            "migratePolicy": "[cpu.upperBoundRatio=70,evadeOOM=true]",
                            "addCustomTags": {"run": "r2", "stage": "align"},
                            "removeCustomTags": ["team"]}
    assert "VM POLICY" in result.out and "onDemand" in result.out
    assert "MIGRATE POLICY:  [cpu.upperBoundRatio=70,evadeOOM=true]" in result.out


@pytest.mark.parametrize("argv, words", [
    (["modify", "-j", "job-1"], "nothing to modify"),
    (["modify", "-j", "job-1", "--vmPolicy", "[spot=yes]"], "unknown vmPolicy key"),
    (["modify", "-j", "job-1", "--customTag", "novalue"], "expected key:value"),
    (["modify", "-j", "job-1", "--customTag", "a:1", "--removeCustomTag", "a"],
     "both added and removed"),
])
def test_a_bad_modify_is_one_line_and_sends_nothing(logged_in, run, argv, words):
    result = run(*argv)

    assert result.code != 0 and result.err.count("\n") == 1 and words in result.err
    assert logged_in.requests == []


def test_modify_of_a_finished_job_is_the_servers_conflict(logged_in, run):
    logged_in.reply("PATCH", "/v1/jobs/job-1", {
        "error": "Conflict", "message": "job job-1 is Completed; only a job that is still "
        "running or waiting can be modified"}, status=409)

    result = run("modify", "-j", "job-1", "--vmPolicy", "[onDemand=true]")

    assert result.code == 1
    assert result.err == ("float: job job-1 is Completed; only a job that is still running or "
                          "waiting can be modified\n")


def test_rerun_prints_the_new_job_as_submit_does(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/rerun", job_json("job-2", status="Submitted"),
                    status=201)

    result = run("rerun", "-j", "job-1", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["id"] == "job-2"
    assert logged_in.requests[0].body == {}


def test_rerun_of_a_live_job_is_refused_on_one_line(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/rerun", {
        "error": "Conflict", "message": "job job-1 is Executing; only a finished job can be "
        "rerun (wait for it to end, or cancel it first)"}, status=409)

    result = run("rerun", "-j", "job-1")

    assert result.code == 1 and result.err.startswith("float: job job-1 is Executing;")


def test_cancel_of_a_job_already_final_says_so_and_succeeds(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/cancel", {
        "error": "Conflict", "message": "job job-1 is already Completed: Completed is final "
        "and there is nothing to cancel"}, status=409)
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(status="Completed"))

    result = run("cancel", "-j", "job-1", "-f")

    assert (result.code, result.err) == (0, "")
    assert result.out == "job job-1 is already Completed; nothing to cancel\n"


def test_a_cancel_conflict_of_a_live_job_still_fails(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/cancel", {
        "error": "StaleWrite", "message": "job job-1 changed while it was being moved"},
        status=409)
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(status="Executing"))

    result = run("cancel", "-j", "job-1", "-f")

    assert result.code == 1
    assert result.err == "float: job job-1 changed while it was being moved\n"


def test_version_names_both_releases(logged_in, run):
    logged_in.reply("GET", "/v1/health", HEALTH)

    result = run("version", "-F", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"client": RELEASE, "opCenter": RELEASE, "api": "v1",
                                      "address": f"http://{logged_in.address}"}


def test_version_without_an_opcenter_is_this_floats(run):
    result = run("version")

    assert (result.code, yaml.safe_load(result.out)) == (0, {"client": RELEASE})


def test_version_of_an_opcenter_that_does_not_answer_still_names_this_floats(run):
    result = run("version", "-a", "127.0.0.1:9", "-F", "json")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["client"] == RELEASE and shown["opCenter"].startswith("unknown: cannot reach")


def test_status_says_the_opcenter_answers_and_who_is_logged_in(logged_in, run):
    logged_in.reply("GET", "/v1/health", HEALTH)
    logged_in.reply("GET", "/v1/whoami", {"username": "alice", "role": "user"})

    result = run("status")

    assert result.code == 0, result.err
    shown = yaml.safe_load(result.out)
    assert (shown["status"], shown["release"], shown["user"]) == ("ok", RELEASE, "alice (user)")
    assert shown["address"] == f"http://{logged_in.address}"


def test_status_of_an_opcenter_that_does_not_answer_fails_on_one_line(run):
    result = run("status", "-a", "127.0.0.1:9")

    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("float: the OpCenter at http://127.0.0.1:9 does not answer")


@pytest.mark.parametrize("release, verdict", [
    (RELEASE, "in step; nothing to sync"),
    ("9.9.9", "they differ; install the float of OpenFloat 9.9.9 to match"),
])
def test_release_sync_exits_zero_and_says_whether_the_releases_match(opcenter, run, release,
                                                                     verdict):
    opcenter.reply("GET", "/v1/health", {**HEALTH, "release": release})

    result = run("-a", opcenter.address, "release", "sync")

    assert result.code == 0, result.err
    assert result.out == (f"OpCenter at http://{opcenter.address} runs OpenFloat {release}; "
                          f"this float is {RELEASE}: {verdict}\n")
