"""The README's walk-through, run as printed against a real local OpCenter (`make run`)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _readme_walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using `float`"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def opcenter(local) -> str:
    return local.url


def test_the_local_tables_are_the_ones_infra_defines(local):
    template = json.loads((ROOT / "infra" / "resources.json").read_text())
    dynamodb = boto3.client("dynamodb", endpoint_url=local.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")
    names = dynamodb.list_tables()["TableNames"]
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        (name,) = [n for n in names if f"-{logical_id}-" in n]
        described = dynamodb.describe_table(TableName=name)["Table"]
        defined = resource["Properties"]
        assert described["KeySchema"] == defined["KeySchema"]
        assert sorted(i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])) == sorted(
            i["IndexName"] for i in defined.get("GlobalSecondaryIndexes", []))


def test_every_command_in_the_readme_works_as_printed(opcenter, tmp_path):
    port = opcenter.rsplit(":", 1)[1]
    script = _readme_walkthrough().replace("127.0.0.1:8787", f"127.0.0.1:{port}")
    assert len(re.findall(r"(?m)^\s*(?:\S+=\$\()?float ", script)) >= 14
    env = {
        **os.environ,
        "OPENFLOAT_ADMIN_PASSWORD": PASSWORD,
        "FLOAT_CONFIG_DIR": str(tmp_path / "config"),
    }
    run = subprocess.run(
        # Run in a scratch directory so hello.sh lands there; `float` is found on PATH.
        ["bash", "-euo", "pipefail", "-x", "-c", script], cwd=tmp_path,
        env={**env, "PATH": f"{VENV_BIN}:{env['PATH']}"},
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    final = json.loads(run.stdout[run.stdout.rindex('\n{\n  "id"'):].split("\n}\n")[0] + "\n}")
    assert final["status"] in ("Cancelling", "Cancelled")
    # The cancel workflow stops the container and releases the instance, then Cancelled.
    shown = _wait_for_status(env, final["id"], "Cancelled")
    assert shown["history"][0]["to"] == "Submitted" and shown["history"][-1]["to"] == "Cancelled"
    assert final["cpu"] == {"min": 2, "max": 4} and final["vmPolicy"]["retryLimit"] == 5
    assert [v["kind"] for v in final["dataVolumes"]] == ["block"]
    assert final["customTags"] == {"project": "demo"} and final["env"] == {"SAMPLE": "NA12878"}
    assert "s3cret-registry-token" not in run.stdout
    session = tmp_path / "config" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600


def _wait_for_status(env: dict[str, str], job_id: str, status: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = json.loads(subprocess.run(
            [str(VENV_BIN / "float"), "show", "-j", job_id, "--format", "json"], env=env,
            capture_output=True, text=True, timeout=60, check=True).stdout)
        if shown["status"] == status or time.monotonic() > deadline:
            assert shown["status"] == status, shown["history"]
            return dict(shown)
        time.sleep(1)


def test_failures_are_one_line_on_stderr_with_a_nonzero_exit(opcenter, tmp_path):
    env = {**os.environ, "FLOAT_CONFIG_DIR": str(tmp_path)}
    float_cmd = [str(VENV_BIN / "float")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(float_cmd + list(args), env=env, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    assert run("login", "-a", opcenter, "-u", "admin", "-p", PASSWORD).returncode == 0
    (tmp_path / "job.sh").write_text("echo hi\n")
    cases = [
        (run("login", "-a", opcenter, "-u", "admin", "-p", "wrong"), "wrong username or password"),
        (run("submit", "-i", "docker.io/library/busybox:1", "-j", "job.sh", "-c", "4:2"), "cpu"),
        (run("submit", "-i", "nosuchimage", "-j", "job.sh"), "Application Library"),
        (run("submit", "-i", "docker.io/library/busybox:1", "-j", "missing.sh"), "missing.sh"),
        (run("show", "-j", "nosuchjob"), "nosuchjob"),
        (run("list", "-f", "status=Running"), "Running"),
    ]
    job = json.loads(run("submit", "-i", "docker.io/library/busybox:1", "-j", "job.sh",
                         "--format", "json").stdout)
    assert run("cancel", "-j", job["id"], "-f").returncode == 0
    _wait_for_status(env, job["id"], "Cancelled")
    again = run("cancel", "-j", job["id"], "-f")
    assert again.returncode == 0 and "already Cancelled" in again.stdout, again
    cases.append((run("suspend", "-j", job["id"]), "is Cancelled"))
    for result, words in cases:
        assert result.returncode != 0, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr
        assert "Traceback" not in result.stderr
