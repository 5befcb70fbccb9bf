"""`float migrate`, `suspend` (hibernate) and `resume` (restore), how a job's migrations are
shown, and `float` run inside a job (FLOAT_ADDRESS, FLOAT_TOKEN, FLOAT_JOB_ID)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.fake_opcenter import PASSWORD, TOKEN, job_json, migration_json, serving

JOB_TOKEN = "job-7-scoped-token"


@pytest.fixture
def in_job(opcenter, monkeypatch: pytest.MonkeyPatch):
    """The environment the OpCenter gives a job's container; no session file is saved."""
    monkeypatch.setenv("FLOAT_ADDRESS", f"http://{opcenter.address}")
    monkeypatch.setenv("FLOAT_TOKEN", JOB_TOKEN)
    monkeypatch.setenv("FLOAT_JOB_ID", "job-7")
    return opcenter


def test_migrate_to_an_instance_type_sends_the_mmcloud_strings(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/migrate", job_json(status="Capturing"), status=202)

    result = run("migrate", "-j", "job-1", "--instType", "c5.2xlarge",
                 "--vmPolicy", "[onDemand=true]", "-f", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "Capturing"
    [request] = logged_in.requests
    assert (request.method, request.path) == ("POST", "/v1/jobs/job-1/migrate")
    assert request.body == {"instType": "c5.2xlarge", "vmPolicy": "[onDemand=true]",
                            "force": True}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_migrate_to_new_ranges_without_force_prints_the_job_as_yaml(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/migrate", job_json(status="Capturing"), status=202)

    result = run("migrate", "-j", "job-1", "-c", "4:16", "-m", "8:32", "--reason", "load done")

    assert result.code == 0, result.err
    shown = yaml.safe_load(result.out)
    assert (shown["id"], shown["status"]) == ("job-1", "Capturing")
    assert logged_in.requests[0].body == {"cpu": "4:16", "mem": "8:32", "reason": "load done"}


def test_migrate_with_an_instance_type_and_cpu_fails_before_any_request(logged_in, run):
    result = run("migrate", "-j", "job-1", "--instType", "c5.2xlarge", "-c", "2:8")

    assert result.code == 1
    assert result.err == "float: give either instType or cpu/mem ranges, not both\n"
    assert result.out == ""
    assert logged_in.requests == []


def test_migrate_with_a_bad_vm_policy_names_it_and_sends_nothing(logged_in, run):
    result = run("migrate", "-j", "job-1", "--vmPolicy", "[cheap=true]")

    assert result.code == 1
    assert result.err.startswith("float: vmPolicy: unknown vmPolicy key 'cheap'")
    assert result.err.count("\n") == 1
    assert logged_in.requests == []


@pytest.mark.parametrize("argv", [["migrate", "--instType", "c5.xlarge"], ["show"]])
def test_without_j_outside_a_job_is_a_usage_error_naming_j(logged_in, run, argv):
    result = run(*argv)

    assert result.code == 2
    assert result.err.startswith("float: give the job with -j ID")
    assert result.err.count("\n") == 1
    assert logged_in.requests == []


@pytest.mark.parametrize(("command", "action", "status"), [
    ("suspend", "suspend", "Suspending"),
    ("hibernate", "suspend", "Suspending"),
    ("resume", "resume", "Resuming"),
    ("restore", "resume", "Resuming"),
])
def test_suspend_and_resume_and_their_aliases(logged_in, run, command, action, status):
    logged_in.reply("POST", f"/v1/jobs/job-1/{action}", job_json(status=status), status=202)

    result = run(command, "-j", "job-1", "-F", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == status
    assert [(r.method, r.path, r.body) for r in logged_in.requests] == [
        ("POST", f"/v1/jobs/job-1/{action}", {})]


def test_suspend_sends_the_reason_and_prints_a_table(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/suspend", job_json(status="Suspending"), status=202)

    result = run("suspend", "-j", "job-1", "--reason", "night", "-F", "table")

    assert result.code == 0, result.err
    assert result.out.splitlines()[3].split() == ["STATUS:", "Suspending"]
    assert logged_in.requests[0].body == {"reason": "night"}


@pytest.mark.parametrize(("argv", "path", "message"), [
    (["migrate", "-j", "job-1", "--instType", "c5.xlarge"], "/v1/jobs/job-1/migrate",
     "job job-1 is Suspended; only an Executing job can be migrated"),
    (["suspend", "-j", "job-1"], "/v1/jobs/job-1/suspend",
     "job job-1 is Completed; only an Executing job can be suspended"),
    (["resume", "-j", "job-1"], "/v1/jobs/job-1/resume",
     "job job-1 is Executing; only a Suspended job can be resumed"),
])
def test_a_conflict_is_the_servers_message_on_one_line(logged_in, run, argv, path, message):
    logged_in.reply("POST", path, {"error": "IllegalTransition", "message": message}, status=409)

    result = run(*argv)

    assert result.code == 1
    assert result.err == f"float: {message}\n"
    assert result.out == ""


def test_show_lists_the_migrations_under_the_history(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(migrations=[
        migration_json(),
        migration_json(time="2024-05-01T12:00:00Z", fromInstance="i-0def", toInstance="i-0123",
                       instanceType="r5.xlarge", zone=None, imageBytes=None, freezeSeconds=None,
                       secondsToExecuting=300.0, rerun=True, reason="restore failed", cause=None),
    ]))

    result = run("show", "-j", "job-1", "-F", "table")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines.index("HISTORY") < lines.index("MIGRATIONS")
    header, first, second = lines[lines.index("MIGRATIONS") + 1:]
    assert header.split() == ["TIME", "MOVE", "INSTANCE", "TYPE", "ZONE", "IMAGE", "MiB",
                              "FREEZE", "s", "TO", "EXECUTING", "s", "RERUN", "REASON"]
    assert first.split() == ["2024-05-01T11:00:00Z", "i-0abc", "→", "i-0def", "c5.2xlarge",
                             "us-east-1b", "512.3", "4.3", "95.0", "no", "spot", "terminate",
                             "warning", "for", "i-0abc"]
    assert second.split() == ["2024-05-01T12:00:00Z", "i-0def", "→", "i-0123", "r5.xlarge",
                              "-", "-", "-", "300.0", "yes", "restore", "failed"]
    assert header.index("RERUN") == first.index("no") == second.index("yes")


def test_show_without_migrations_has_no_migrations_section(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(disableRerun=True))

    result = run("show", "-j", "job-1", "-F", "table")

    assert result.code == 0, result.err
    assert "MIGRATIONS" not in result.out
    [rerun] = [line for line in result.out.splitlines() if line.startswith("RERUN:")]
    assert rerun.split()[1] == "disabled"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_show_as_json_or_yaml_is_the_job_with_its_migrations(logged_in, run, fmt):
    job = job_json(migrations=[migration_json()])
    logged_in.reply("GET", "/v1/jobs/job-1", job)

    result = run("show", "-j", "job-1", "-F", fmt)

    assert result.code == 0, result.err
    shown = json.loads(result.out) if fmt == "json" else yaml.safe_load(result.out)
    # Every field the OpCenter sent, as it sent it (fields it left out show their defaults).
    assert {key: shown[key] for key in job} == job


def test_inside_a_job_migrate_needs_no_login_and_moves_the_job_itself(in_job, run,
                                                                      float_home: Path):
    in_job.reply("POST", "/v1/jobs/job-7/migrate", job_json("job-7", "Capturing"), status=202)

    result = run("migrate", "--instType", "c5.xlarge")

    assert result.code == 0, result.err
    assert yaml.safe_load(result.out)["id"] == "job-7"
    [request] = in_job.requests
    assert (request.method, request.path) == ("POST", "/v1/jobs/job-7/migrate")
    assert request.headers["authorization"] == f"Bearer {JOB_TOKEN}"
    assert request.body == {"instType": "c5.xlarge"}
    assert not (float_home / "session.json").exists()
    assert JOB_TOKEN not in result.out + result.err


def test_inside_a_job_the_job_token_is_used_instead_of_a_saved_session(logged_in, in_job, run):
    in_job.reply("GET", "/v1/jobs/job-7", job_json("job-7"))

    result = run("show", "-F", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["id"] == "job-7"
    assert [(r.path, r.headers["authorization"]) for r in in_job.requests] == [
        ("/v1/jobs/job-7", f"Bearer {JOB_TOKEN}")]


def test_inside_a_job_j_names_another_job(in_job, run):
    in_job.reply("POST", "/v1/jobs/job-9/migrate", job_json("job-9", "Capturing"), status=202)

    result = run("migrate", "-j", "job-9", "-f")

    assert result.code == 0, result.err
    assert [(r.path, r.body) for r in in_job.requests] == [
        ("/v1/jobs/job-9/migrate", {"force": True})]


def test_an_explicit_address_wins_and_the_job_token_never_goes_there(in_job, run):
    with serving() as other:
        other.reply("POST", "/v1/login", {"token": TOKEN, "username": "alice", "role": "user",
                                          "expiresAt": "2030-01-01T00:00:00Z"})
        other.reply("GET", "/v1/jobs/job-1", job_json())
        assert run("login", "-a", other.address, "-u", "alice", "-p", PASSWORD).code == 0

        result = run("show", "-j", "job-1", "-a", other.address)

        assert result.code == 0, result.err
        assert other.requests[-1].path == "/v1/jobs/job-1"
        assert all(r.headers.get("authorization") != f"Bearer {JOB_TOKEN}"
                   for r in other.requests)
        assert other.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert in_job.requests == []


def test_an_explicit_address_without_a_session_is_not_logged_in(in_job, run):
    result = run("migrate", "--instType", "c5.xlarge", "-a", "127.0.0.1:1")

    assert result.code == 1
    assert result.err.startswith("float: not logged in")
    assert in_job.requests == []


def test_inside_a_job_username_and_password_log_in_instead(in_job, run):
    in_job.reply("GET", "/v1/jobs/job-7", job_json("job-7"))

    result = run("show", "-u", "alice", "-p", PASSWORD)

    assert result.code == 0, result.err
    assert [r.path for r in in_job.requests] == ["/v1/login", "/v1/jobs/job-7"]
    assert in_job.requests[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_refused_job_token_does_not_say_to_log_in(in_job, run):
    in_job.reply("POST", "/v1/jobs/job-7/migrate",
                 {"error": "Unauthorized", "message": "the token expired"}, status=401)

    result = run("migrate")

    assert result.code == 1
    assert result.err == "float: the token expired; the token came from FLOAT_TOKEN\n"


def test_a_malformed_float_address_is_one_line(in_job, run, monkeypatch):
    monkeypatch.setenv("FLOAT_ADDRESS", "ftp://opcenter")

    result = run("show")

    assert result.code == 1
    assert result.err == ("float: FLOAT_ADDRESS='ftp://opcenter' is not an OpCenter address "
                          "such as http://127.0.0.1:8787\n")
    assert in_job.requests == []


def test_reclaim_sends_the_notice_and_prints_when_the_instance_goes(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/reclaim", {
        "jobId": "job-1", "instanceId": "i-0abc", "noticeSeconds": 30,
        "terminateTime": "2024-05-01T11:00:30Z"}, status=202)

    result = run("reclaim", "-j", "job-1", "--notice", "30s", "--format", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {"notice": 30}
    assert "TERMINATED AT:  2024-05-01T11:00:30Z" in result.out


def test_reclaim_with_a_bad_notice_fails_before_any_request(logged_in, run):
    result = run("reclaim", "-j", "job-1", "--notice", "soon")

    assert result.code != 0 and logged_in.requests == []
    assert result.err.count("\n") == 1 and "'soon' is not a number of seconds" in result.err


def test_reclaim_of_another_kind_sends_it_and_says_what_was_left_running(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/reclaim", {
        "jobId": "job-1", "instanceId": "i-0abc", "kind": "agent", "noticeSeconds": None,
        "terminateTime": None}, status=202)

    result = run("reclaim", "-j", "job-1", "--kind", "agent", "--format", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {"kind": "agent"}
    assert "KIND:" in result.out and "agent alone was killed" in result.out


@pytest.mark.parametrize("args, words", [
    (("--kind", "meteor"), "kind"),
    (("--kind", "vanish", "--notice", "30"), "notice is for kind spot"),
])
def test_reclaim_of_an_unknown_kind_or_a_notice_without_a_warning_is_refused(logged_in, run,
                                                                              args, words):
    result = run("reclaim", "-j", "job-1", *args)

    assert result.code != 0 and logged_in.requests == []
    assert result.err.count("\n") == 1 and words in result.err
