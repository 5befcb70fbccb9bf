"""`float submit`, `list`, `show`, `log` and `cancel` against the fake OpCenter."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from tests.cli.fake_opcenter import job_json


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "align.sh"
    path.write_text("#!/bin/bash\nbwa mem ref.fa reads.fq > out.sam\n")
    return path


def test_submit_sends_the_script_content_and_the_mmcloud_strings(logged_in, run, script: Path):
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "-c", "2:8", "-m", "4", "-n", "align",
                 "-e", "REF=hg38", "-e", "THREADS=8", "--customTag", "team:genomics",
                 "--dataVolume", "[size=60]:/mnt/x", "--vmPolicy", "[spotFirst=true,retryLimit=5]",
                 "--migratePolicy", "[cpu.upperBoundRatio=80]", "--instType", "c5.2xlarge",
                 "--disableRerun", "--timeLimit", "30m", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["id"] == "job-1"
    [request] = logged_in.requests
    assert (request.method, request.path) == ("POST", "/v1/jobs")
    assert request.body == {
        "image": "bwa", "jobScript": script.read_text(), "cpu": "2:8", "mem": "4",
        "instType": "c5.2xlarge", "name": "align", "vmPolicy": "[spotFirst=true,retryLimit=5]",
        "migratePolicy": "[cpu.upperBoundRatio=80]", "env": {"REF": "hg38", "THREADS": "8"},
        "customTags": {"team": "genomics"}, "dataVolumes": ["[size=60]:/mnt/x"],
        "disableRerun": True, "timeLimit": "30m",
    }


def test_sbatch_is_submit_and_yaml_is_the_default(logged_in, run, script: Path):
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("sbatch", "-i", "bwa", "-j", str(script))

    assert result.code == 0, result.err
    shown = yaml.safe_load(result.out)
    assert (shown["id"], shown["status"]) == ("job-1", "Submitted")
    assert shown["history"][1]["from"] == "Starting"
    assert logged_in.requests[0].body == {"image": "bwa", "jobScript": script.read_text()}


def test_a_missing_script_file_fails_before_any_request(logged_in, run, tmp_path: Path):
    missing = tmp_path / "nope.sh"

    result = run("submit", "-i", "bwa", "-j", str(missing))

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"float: cannot read the job script {missing}")
    assert logged_in.requests == []


def test_a_reversed_cpu_range_names_cpu_and_sends_nothing(logged_in, run, script: Path):
    result = run("submit", "-i", "bwa", "-j", str(script), "-c", "3:1")

    assert result.code == 1
    assert result.err == "float: cpu: MIN 3 is larger than MAX 1\n"
    assert logged_in.requests == []


def test_a_malformed_env_flag_is_a_usage_error(logged_in, run, script: Path):
    result = run("submit", "-i", "bwa", "-j", str(script), "-e", "REF")

    assert result.code == 2
    assert result.err == "float: -e 'REF': expected K=V\n"
    assert logged_in.requests == []


def test_list_follows_next_token_and_maps_filters_to_the_query(logged_in, run):
    logged_in.reply("GET", "/v1/jobs", {"items": [job_json("job-3"), job_json("job-2")],
                                        "nextToken": "page-2"})
    logged_in.reply("GET", "/v1/jobs", {"items": [job_json("job-1", "Suspended")]})

    result = run("-F", "json", "list", "-f", "status=Executing or status=Suspended",
                 "-f", "user=x")

    assert result.code == 0, result.err
    assert [job["id"] for job in json.loads(result.out)] == ["job-3", "job-2", "job-1"]
    first, second = logged_in.requests
    assert first.query == {"status": "Executing,Suspended", "user": "x"}
    assert second.query == {"status": "Executing,Suspended", "user": "x", "nextToken": "page-2"}


def test_list_as_a_table_has_aligned_readable_columns(logged_in, run):
    logged_in.reply("GET", "/v1/jobs", {"items": [
        job_json("job-1", name="a-rather-long-name"), job_json("job-22", "Suspended", name=None)]})

    result = run("squeue", "--format", "table")

    assert result.code == 0, result.err
    header, first, second = result.out.splitlines()
    assert header.split() == ["ID", "NAME", "USER", "STATUS", "SUBMIT", "TIME", "CPU", "MEM"]
    assert first.split() == ["job-1", "a-rather-long-name", "alice", "Executing",
                             "2024-05-01T10:00:00Z", "2:8", "4", "GB"]
    assert second.split()[:4] == ["job-22", "-", "alice", "Suspended"]
    assert header.index("STATUS") == first.index("Executing") == second.index("Suspended")


@pytest.mark.parametrize(("flag", "complaint"), [
    ("state=Executing", "unknown key 'state'"),
    ("status=Running", "'Running' is not a job status"),
    ("status=Executing or user=x", "'or' joins values of one key"),
])
def test_list_rejects_a_bad_filter_without_asking_the_server(logged_in, run, flag, complaint):
    result = run("list", "-f", flag)

    assert result.code == 2
    assert complaint in result.err and result.err.count("\n") == 1
    assert logged_in.requests == []


def test_show_as_json_has_the_fields_clients_read(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", job_json(rc=0, status="Completed"))

    result = run("show", "-j", "job-1", "--format", "json")

    assert result.code == 0, result.err
    job = json.loads(result.out)
    assert (job["id"], job["status"], job["rc"]) == ("job-1", "Completed", 0)
    assert job["customTags"] == {"team": "genomics"} and job["portMappings"] == []


def test_show_as_a_table_ends_with_the_history(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1", job_json())

    result = run("show", "-j", "job-1", "-F", "table")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["ID:", "job-1"]
    history = lines[lines.index("HISTORY") + 1:]
    assert history[0].split() == ["TIME", "CHANGE", "REASON", "INSTANCE"]
    assert history[2].split() == ["2024-05-01T10:05:00Z", "Starting", "→", "Executing",
                                  "container", "started", "i-0abc"]


def test_log_cat_prints_the_raw_body_in_either_argument_order(logged_in, run):
    text = "line one\n\tindented: {\"not\": json}\nno final newline"
    logged_in.reply("GET", "/v1/jobs/job-1/logs/stdout", text, content_type="text/plain")

    first = run("log", "-j", "job-1", "cat", "stdout")
    second = run("log", "cat", "stdout", "-j", "job-1")

    assert (first.code, first.out) == (0, text)
    assert (second.code, second.out) == (0, text)
    assert logged_in.requests[0].headers["authorization"].startswith("Bearer ")


def test_log_ls_lists_the_logs(logged_in, run):
    logged_in.reply("GET", "/v1/jobs/job-1/logs",
                    [{"name": "stdout", "size": 12, "updateTime": "2024-05-01T10:06:00Z"}])

    result = run("log", "-j", "job-1", "ls", "-F", "json")

    assert json.loads(result.out) == [
        {"name": "stdout", "size": 12, "updateTime": "2024-05-01T10:06:00Z"}]


def test_cancel_off_a_terminal_proceeds_without_asking(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/cancel", job_json(status="Cancelling"))

    result = run("scancel", "-j", "job-1")

    assert result.code == 0, result.err
    assert yaml.safe_load(result.out)["status"] == "Cancelling"
    assert [(r.method, r.path, r.body) for r in logged_in.requests] == [
        ("POST", "/v1/jobs/job-1/cancel", {})]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cancel_on_a_terminal_asks_and_a_no_sends_nothing(logged_in, run, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))

    result = run("cancel", "-j", "job-1")

    assert result.code == 1
    assert result.err.endswith("Cancel job job-1? [y/N] float: job job-1 was not cancelled\n")
    assert logged_in.requests == []


def test_a_conflict_from_the_server_is_its_message_on_one_line(logged_in, run):
    logged_in.reply("POST", "/v1/jobs/job-1/cancel", {
        "error": "IllegalTransition", "message": "job job-1 is Completed and cannot be cancelled",
    }, status=409)

    result = run("cancel", "-j", "job-1", "-f")

    assert result.code == 1
    assert result.err == "float: job job-1 is Completed and cannot be cancelled\n"
    assert result.out == ""


def test_a_malformed_time_limit_names_it_and_sends_nothing(logged_in, run, script: Path):
    result = run("submit", "-i", "bwa", "-j", str(script), "--timeLimit", "an hour")

    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "timeLimit" in result.err and "duration such as" in result.err
    assert logged_in.requests == []


def test_submit_with_force_as_pipeline_plugins_send_it_submits_without_asking(logged_in, run,
                                                                              script: Path):
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "--force", "--format", "json")

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {"image": "bwa", "jobScript": script.read_text()}


def test_a_value_that_starts_with_a_dash_is_the_value_of_the_flag_before_it(logged_in, run,
                                                                            script: Path):
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "-n", "-dash",
                 "--customTag", "-odd:tag", "--format", "json")

    assert result.code == 0, result.err
    body = logged_in.requests[0].body
    assert body["name"] == "-dash" and body["customTags"] == {"-odd": "tag"}
    # read as the value, so the validator names it, rather than as an unknown flag
    refused = run("submit", "-i", "bwa", "-j", str(script), "-e", "-FLAGS=x")
    assert refused.code == 1 and len(logged_in.requests) == 1
    assert refused.err == "float: env: '-FLAGS' is not a valid environment variable name\n"


def test_instance_and_container_flags_as_nf_float_sends_them(logged_in, run, script: Path):
    logged_in.reply("POST", "/v1/jobs", job_json(status="Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "--gpu-count", "1",
                 "--disableMigrate", "--extraContainerOpts", "--privileged",
                 "--imageVolSize", "80", "--rootVolSize", "40", "--zone", "us-east-1b",
                 "--securityGroup", "sg-0123abcd", "--withRoot", "--dirMap", "/scratch:/mnt/s",
                 "--extraOptions", "--vmPolicy [onDemand=true] --customTag stage:align",
                 "--format", "json")

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {
        "image": "bwa", "jobScript": script.read_text(), "gpu": 1, "disableMigrate": True,
        "containerOpts": ["--privileged"], "imageVolSize": 80, "rootVolSize": 40,
        "zone": "us-east-1b", "securityGroups": ["sg-0123abcd"], "withRoot": True,
        "dirMaps": ["/scratch:/mnt/s"], "vmPolicy": "[onDemand=true]",
        "customTags": {"stage": "align"},
    }


@pytest.mark.parametrize("flags, complaint", [
    (["--extraContainerOpts", "--network=host"], "--network is not allowed"),
    (["--extraOptions", "--vmPolicy '[onDemand=true]"], "cannot read --extraOptions"),
    (["--extraOptions", "--nosuchflag 1"], "unrecognized arguments: --nosuchflag"),
    (["--gpu", "many"], "invalid int value: 'many'"),
    (["--zone", "nowhere"], "'nowhere' is not an availability zone name"),
])
def test_bad_instance_and_container_flags_are_refused_before_any_request(logged_in, run,
                                                                          script: Path, flags,
                                                                          complaint):
    result = run("submit", "-i", "bwa", "-j", str(script), *flags)

    assert result.code != 0 and complaint in result.err, result.err
    assert len(result.err.splitlines()) == 1
    assert logged_in.requests == []
