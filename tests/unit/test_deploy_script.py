"""infra/deploy.sh refuses, with one clear line and before touching AWS, what it cannot deploy
with: no STACK, a malformed setting, no AWS CLI, no region, no credentials."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "deploy.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _bin_without_aws(tmp_path: Path) -> Path:
    """A PATH directory with what the script runs before it calls AWS, and no `aws`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "cat", "sed", "tr", "head", "cut", "sha256sum", "paste"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def _fake_aws(bin_dir: Path, body: str) -> None:
    aws = bin_dir / "aws"
    aws.write_text(f"#!{BASH}\n{body}\n")
    aws.chmod(0o755)


def _run(bin_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **settings}
    return subprocess.run([BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_script_parses() -> None:
    assert subprocess.run([BASH, "-n", str(SCRIPT)], check=False).returncode == 0


@pytest.mark.parametrize("command", ["deploy", "undeploy", "drill"])
def test_without_stack_it_says_to_set_stack(tmp_path: Path, command: str) -> None:
    result = _run(_bin_without_aws(tmp_path), command)
    assert result.returncode == 1
    assert result.stderr == f"deploy: set STACK to the stack's name: make {command} STACK=openfloat\n"


def test_without_the_aws_cli_it_says_so(tmp_path: Path) -> None:
    result = _run(_bin_without_aws(tmp_path), "deploy", STACK="openfloat")
    assert result.returncode == 1
    assert "the AWS CLI (aws) is not on PATH" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unknown_command_shows_the_usage(tmp_path: Path) -> None:
    result = _run(_bin_without_aws(tmp_path), "destroy", STACK="openfloat")
    assert result.returncode == 1
    assert "usage: infra/deploy.sh deploy|undeploy|drill (got 'destroy')" in result.stderr


@pytest.mark.parametrize(("setting", "value", "named"), [
    ("STACK", "my_stack", "STACK 'my_stack' is not a stack name"),
    ("SUBNETS", "subnet-0a1b,sg-0c2d", "SUBNETS 'subnet-0a1b,sg-0c2d' is not a comma-separated list"),
    ("SECURITY_GROUPS", "default", "SECURITY_GROUPS 'default' is not a comma-separated list"),
    ("VPC", "vpc-01,vpc-02", "VPC takes one VPC id"),
    ("BUILD_SUBNET", "subnet-0a1b", "set BUILD_SUBNET and BUILD_SECURITY_GROUPS together"),
    ("CHECKPOINT_INTERVAL", "5", "CHECKPOINT_INTERVAL '5' is not 0 or whole seconds from 10"),
    ("CHECKPOINT_INTERVAL", "10m", "CHECKPOINT_INTERVAL '10m' is not 0 or whole seconds"),
    ("DATA_BUCKETS", "s3://genomics-raw", "DATA_BUCKETS 's3://genomics-raw' is not a comma-separated"
     " list of bucket names"),
    ("DATA_BUCKETS", "genomics-raw/run1", "DATA_BUCKETS 'genomics-raw/run1' is not"),
    ("DATA_BUCKETS", "genomics-raw,,x", "DATA_BUCKETS 'genomics-raw,,x' is not"),
    ("DATA_BUCKETS", "Genomics", "DATA_BUCKETS 'Genomics' is not"),
])
def test_a_malformed_setting_is_named_before_aws_is_called(tmp_path: Path, setting: str,
                                                           value: str, named: str) -> None:
    bin_dir = _bin_without_aws(tmp_path)
    calls = tmp_path / "calls"
    _fake_aws(bin_dir, f'echo "$*" >> {calls}; exit 1')
    result = _run(bin_dir, "deploy", **{"STACK": "openfloat", setting: value})
    assert result.returncode == 1
    assert named in result.stderr
    assert not calls.exists()


@pytest.mark.parametrize(("settings", "named"), [
    ({}, "set JOB to the id of an Executing Spot job"),
    ({"JOB": "Job-1"}, "JOB 'Job-1' is not a job id"),
    ({"JOB": "abc123", "NOTICE_MINUTES": "1"},
     "NOTICE_MINUTES '1' is not a whole number of minutes from 2 to 15"),
])
def test_a_drill_needs_a_job_and_a_notice_fis_accepts(tmp_path: Path, settings: dict[str, str],
                                                      named: str) -> None:
    result = _run(_bin_without_aws(tmp_path), "drill", STACK="openfloat", **settings)
    assert result.returncode == 1
    assert named in result.stderr


def test_without_a_region_it_says_how_to_set_one(tmp_path: Path) -> None:
    bin_dir = _bin_without_aws(tmp_path)
    _fake_aws(bin_dir, "exit 1")  # `aws configure get region` finds none
    result = _run(bin_dir, "undeploy", STACK="openfloat")
    assert result.returncode == 1
    assert "no AWS region: set REGION" in result.stderr


def test_without_working_credentials_it_says_so(tmp_path: Path) -> None:
    bin_dir = _bin_without_aws(tmp_path)
    _fake_aws(bin_dir, 'echo "Unable to locate credentials" >&2; exit 255')
    result = _run(bin_dir, "undeploy", STACK="openfloat", REGION="eu-west-1")
    assert result.returncode == 1
    assert result.stderr.startswith("deploy: no working AWS credentials for region eu-west-1")


def test_deploy_without_the_virtualenv_says_to_run_setup(tmp_path: Path) -> None:
    bin_dir = _bin_without_aws(tmp_path)
    _fake_aws(bin_dir, "exit 0")
    result = _run(bin_dir, "deploy", STACK="openfloat", REGION="eu-west-1",
                  PY=str(tmp_path / "missing" / "python"))
    assert result.returncode == 1
    assert "run 'make setup'" in result.stderr

