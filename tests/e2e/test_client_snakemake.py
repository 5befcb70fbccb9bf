"""Snakemake's snakemake-float profile against the local OpCenter, call for call as its
scripts make them (docs/clients.md, section 2, cites each file and line):

- float_login.py: `float login --info`, and when that fails `float login --address A
  --username U --password P`, before every submit, status and cancel;
- float_submit.py: `float submit --force --format json --image ... --dataVolume ... --cpu
  MIN:MAX --mem MIN:MAX --name PREFIX-job_N-attempt_N --job JOBSCRIPT <submit-extra>
  --customTag ...`, with `cd WORK_DIR` put in the job script as its fourth line, and
  `json.loads(stdout)["id"]`;
- float_status.py: `float show --format json --job ID` and its strict `_STATUS_MAP` lookup
  (running / success / failed);
- float_cancel.py: `float cancel --force --job ID`, its exit code ignored.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from pathlib import Path

import boto3
import pytest

from localmode.demo import wait_until
from tests.e2e.clients import float_env, run
from tests.e2e.conftest import PASSWORD, python_image

BUCKET = "smk-work"
WORK_DIR = f"/mnt/{BUCKET}/work"
PREFIX = "e2e_smk"
# The profile's snakemake-float.yaml, as its README shows it.
CONFIG = {"work-dir": WORK_DIR, "data-volumes": [f"[mode=rw]s3://{BUCKET}:/mnt/{BUCKET}"],
          "job-prefix": PREFIX, "max-cpu-factor": 4, "max-mem-factor": 4,
          "submit-extra": "--migratePolicy [enable=true]"}
# float_status.py's _STATUS_MAP: a plain dict index, so an unknown name raises KeyError.
STATUS_MAP = {
    **dict.fromkeys(["Submitted", "Initializing", "Starting", "Executing", "Capturing",
                     "Floating", "Suspended", "Suspending", "Resuming"], "running"),
    "Completed": "success",
    **dict.fromkeys(["Cancelled", "Cancelling", "FailToComplete", "FailToExecute",
                     "CheckpointFailed", "Timedout", "NoAvailableHost", "Unknown",
                     "WaitingForLicense"], "failed"),
}
# A Snakemake job script as Snakemake writes it: properties on line 2, the command after.
JOBSCRIPT = """#!/bin/sh
# properties = {{"type": "single", "rule": "{rule}", "jobid": {jobid}, "threads": {threads}}}
set -e
{command}
"""
RULES = {
    "bwa_map": (1, 2, "echo mapped > mapped.txt && cat mapped.txt"),
    "samtools_sort": (2, 1, "sleep 300"),
}


class Profile:
    """The profile's three scripts, sharing the saved session as they do."""

    def __init__(self, address: str, home: Path) -> None:
        self.address = address
        self.env = float_env(home)

    def login(self) -> None:
        """float_login.py: check the session; log in again when it is not valid."""
        if run(["login", "--info"], self.env).code != 0:
            done = run(["login", "--address", self.address, "--username", "admin",
                        "--password", PASSWORD], self.env)
            assert done.code == 0, done.err

    def submit(self, image: str, rule: str, jobid: int, threads: int, command: str,
               scratch: Path) -> str:
        """float_submit.py main(): the line in its order; stdout must be the JSON alone."""
        self.login()
        script = scratch / f"snakejob.{rule}.{jobid}.sh"
        lines = JOBSCRIPT.format(rule=rule, jobid=jobid, threads=threads,
                                 command=command).splitlines(keepends=True)
        lines.insert(3, f"cd {CONFIG['work-dir']}\n")
        script.write_text("".join(lines))
        cpu = max(threads, 2)
        mem = max(math.ceil(4096 / 1024), 4, 2 * cpu)
        line = ["submit", "--force", "--format", "json", "--image", image]
        for volume in CONFIG["data-volumes"]:
            line += ["--dataVolume", volume]
        line += ["--cpu", f"{cpu}:{math.ceil(CONFIG['max-cpu-factor'] * cpu)}",
                 "--mem", f"{mem}:{math.ceil(CONFIG['max-mem-factor'] * mem)}",
                 "--name", f"{PREFIX}-job_{jobid}-attempt_1", "--job", str(script)]
        line += shlex.split(CONFIG["submit-extra"])
        line += ["--customTag", f"nextflow-io-run-name:{PREFIX}",
                 "--customTag", f"nextflow-io-project-name:{PREFIX}",
                 "--customTag", f"nextflow-io-process-name:{rule}"]
        done = run(line, self.env)
        assert done.code == 0, done.err
        return str(json.loads(done.out)["id"])

    def status(self, job_id: str) -> str:
        """float_status.py: show as JSON, then the strict lookup."""
        self.login()
        done = run(["show", "--format", "json", "--job", job_id], self.env)
        assert done.code == 0, done.err
        return STATUS_MAP[json.loads(done.out)["status"]]

    def cancel(self, job_id: str) -> None:
        """float_cancel.py: started and left; nothing waits for it or reads its exit code."""
        self.login()
        subprocess.Popen(["float", "cancel", "--force", "--job", job_id], env=self.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def profile(local, tmp_path: Path) -> Profile:
    return Profile(local.url, tmp_path / "snakemake-home")


def test_a_snakemake_workflow_through_the_snakemake_float_profile(local, admin_cli, profile,
                                                                  tmp_path: Path):
    image = python_image(admin_cli)
    s3 = boto3.client("s3", endpoint_url=local.aws_endpoint, region_name="us-east-1",
                      aws_access_key_id="local", aws_secret_access_key="local")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="work/", Body=b"")
    jobs = {rule: profile.submit(image, rule, jobid, threads, command, tmp_path)
            for rule, (jobid, threads, command) in RULES.items()}

    wait_until("the sort job to run", lambda: profile.status(jobs["samtools_sort"]) == "running"
         and admin_cli.job(jobs["samtools_sort"])["status"] == "Executing", 240)
    profile.cancel(jobs["samtools_sort"])

    outcome = {rule: wait_until(f"{rule} to finish",
                          lambda job=job_id: (s := profile.status(job)) != "running" and s, 300)
               for rule, job_id in jobs.items()}
    assert outcome == {"bwa_map": "success", "samtools_sort": "failed"}

    mapped = admin_cli.job(jobs["bwa_map"])
    assert (mapped["status"], mapped["rc"]) == ("Completed", 0)
    assert mapped["name"] == f"{PREFIX}-job_1-attempt_1"
    assert mapped["customTags"]["nextflow-io-process-name"] == "bwa_map"
    assert mapped["cpu"] == {"min": 2, "max": 8} and mapped["mem"] == {"min": 4, "max": 16}
    assert mapped["migratePolicy"]["disable"] is False
    # The rule ran in the profile's work dir, on the bucket its data volume mounts.
    body = s3.get_object(Bucket=BUCKET, Key="work/mapped.txt")["Body"].read()
    assert body == b"mapped\n"
    assert admin_cli.stdout(jobs["bwa_map"]) == "mapped\n"
    assert admin_cli.job(jobs["samtools_sort"])["status"] == "Cancelled"
    for job_id in jobs.values():
        assert not local.live_instances(job_id)
