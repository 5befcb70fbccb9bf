"""Nextflow's nf-float plugin against the local OpCenter, call for call as the plugin makes
them (docs/clients.md, section 1, cites each file and line):

- plugins/nf-float/src/main/com/memverge/nextflow/FloatConf.groovy: the `-a ADDR -u USER -p
  PASS` prefix on every call (no `float login`), the S3 work-dir volume with `accesskey=` and
  `secret=`, the vmPolicy and migratePolicy strings;
- FloatGridExecutor.groovy: `release sync` and `secret set` at start, the submit line in its
  order, `show -j ID` (YAML) for status, `cancel -j ID -f`, `secret unset` at the end;
- Global.groovy: stderr merged into stdout, each call killed after 60 s; the job script's
  header that reads the AWS keys with `/opt/memverge/bin/float secret get NAME -a $FLOAT_ADDR`;
- FloatJob.groovy: the regexes on the YAML reply and the status map;
- FloatTaskHandler.groovy: the exit code from `.exitcode` in the work dir, then `rc`.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

from localmode.demo import wait_until
from tests.e2e.clients import ALL_STATUSES, float_env, run
from tests.e2e.conftest import PASSWORD, python_image

RUN_NAME = "e2e_run"  # nf-float upper-cases it and turns `_` into `-` for secret names
SECRET_RUN = RUN_NAME.upper().replace("_", "-")
ACCESS_KEY, SECRET_KEY = "AKIAE2ENFFLOAT", "nf-float-secret-key/with+chars"
BUCKET = "nf-work"

# FloatJob.groovy: each regex takes the first match in the text.
ID = re.compile(r"(?ms)id: ([0-9a-zA-Z\-]+).*")
STATUS = re.compile(r"(?ms)status: ([0-9a-zA-Z\-]+).*")
RC = re.compile(r"(?ms)rc: ([\"0-9]+).*")
NF_JOB_ID = re.compile(r"(?ms)nf-job-id: ([0-9a-zA-Z\-]+).*")
# FloatJob.groovy's map, then FloatGridExecutor's to Nextflow's queue status.
NF_STATUS = {
    **dict.fromkeys(["Submitted", "Initializing"], "PENDING"),
    **dict.fromkeys(["Starting", "Executing", "Floating", "Suspended", "Suspending", "Resuming",
                     "Capturing"], "RUNNING"),
    "Completed": "DONE",
    **dict.fromkeys(["Cancelled", "Cancelling", "FailToComplete", "FailToExecute",
                     "CheckpointFailed", "WaitingForLicense", "Timedout"], "ERROR"),
    "NoAvailableHost": "ERROR",
}

# The job script nf-float hands to `--job`: its header exports the AWS keys read from the
# OpCenter's secrets, then the task runs in its work dir on the mounted bucket and leaves its
# exit code in .exitcode, as Nextflow's .command.run does.
WRAPPER = f"""#!/bin/bash
get="/opt/memverge/bin/float secret get"
export AWS_ACCESS_KEY_ID=$($get AWS_ACCESS_KEY_ID_{SECRET_RUN} -a $FLOAT_ADDR)
export AWS_SECRET_ACCESS_KEY=$($get AWS_SECRET_ACCESS_KEY_{SECRET_RUN} -a $FLOAT_ADDR)
cd /{BUCKET}/work/{{task}}
/bin/bash .command.sh > .command.out 2> .command.err
rc=$?
echo $rc > .exitcode
exit $rc
"""
TASKS = {
    "ab/0001": 'echo "key=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY"\necho aligned\n',
    "cd/0002": "echo failing >&2\nexit 3\n",
    "ef/0003": "sleep 300\n",
}


@pytest.fixture
def nf(local, admin_cli, tmp_path: Path):
    """`float` as nf-float runs it: the address without a scheme and the login on every call."""
    env = float_env(tmp_path / "nf-float-home")
    address = local.url.removeprefix("http://")
    prefix = ["-a", address, "-u", "admin", "-p", PASSWORD]
    return lambda *args: run([*prefix, *args], env, merge_stderr=True)


def _s3(local):
    return boto3.client("s3", endpoint_url=local.aws_endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def _submit_line(image: str, job_file: Path, task: str, index: int) -> list[str]:
    """FloatGridExecutor.getSubmitCommandLine, in its order, for one task."""
    volume = f"[mode=rw,accesskey={ACCESS_KEY},secret={SECRET_KEY}]s3://{BUCKET}:/{BUCKET}"
    tags = {"nf-job-id": f"{SECRET_RUN.lower()}-{index}",
            "nextflow-io-session-id": "uuid-6f1c0e4a-9d1b-4a4f-8e8e-0a7c7b0f1e2d",
            "nextflow-io-task-name": f"ALIGN-{index}", "input-size": "0",
            "nextflow-io-process-name": "ALIGN", "job-kind": "s3-ALIGN",
            "nextflow-io-project-name": "e2e", "nextflow-io-run-name": SECRET_RUN.lower()}
    line = ["submit", "--dataVolume", volume, "--image", image, "--cpu", "1:4",
            "--mem", "2:8", "--job", str(job_file), "--disableRerun"]
    for key, value in tags.items():
        line += ["--customTag", f"{key}:{value}"]
    line += ["--vmPolicy", "[spotFirst=true,retryLimit=3,retryInterval=10m]",
             "--migratePolicy", "[cpu.upperBoundRatio=90,cpu.upperBoundDuration=10s]"]
    return line


def _status(reply: str) -> str:
    found = STATUS.match(reply) or STATUS.search(reply)
    assert found, reply
    assert found.group(1) in ALL_STATUSES, reply
    return found.group(1)


def test_a_nextflow_run_through_nf_float(local, admin_cli, nf, tmp_path: Path):
    image = python_image(admin_cli)
    s3 = _s3(local)
    s3.create_bucket(Bucket=BUCKET)
    for task, script in TASKS.items():
        s3.put_object(Bucket=BUCKET, Key=f"work/{task}/.command.sh", Body=script.encode())

    # FloatGridExecutor.register: the CLI is synced and the AWS keys become secrets.
    assert nf("release", "sync").code == 0
    for name, value in ((f"AWS_ACCESS_KEY_ID_{SECRET_RUN}", ACCESS_KEY),
                        (f"AWS_SECRET_ACCESS_KEY_{SECRET_RUN}", SECRET_KEY)):
        done = nf("secret", "set", name, value)
        assert done.code == 0, done.out

    jobs: dict[str, str] = {}
    for index, task in enumerate(TASKS, start=1):
        job_file = tmp_path / f"command-{index}.run"
        job_file.write_text(WRAPPER.format(task=task))
        reply = nf(*_submit_line(image, job_file, task, index))
        assert reply.code == 0, reply.out
        # parseJobId: the job is tracked only if its nf-job-id comes back in the reply.
        assert NF_JOB_ID.match(reply.out) or NF_JOB_ID.search(reply.out), reply.out
        assert NF_JOB_ID.search(reply.out).group(1) == f"{SECRET_RUN.lower()}-{index}"
        found = ID.match(reply.out)
        assert found, reply.out
        jobs[task] = found.group(1)
    assert len(set(jobs.values())) == 3

    def queue_status(job_id: str) -> str:
        shown = nf("show", "-j", job_id)
        assert shown.code == 0, shown.out
        return NF_STATUS.get(_status(shown.out), "UNKNOWN")

    # The long task is killed once it runs, as Nextflow kills a task it no longer needs.
    wait_until("the third task to run", lambda: queue_status(jobs["ef/0003"]) == "RUNNING", 240)
    killed = nf("cancel", "-j", jobs["ef/0003"], "-f")
    assert killed.code == 0, killed.out

    finished = {task: wait_until(f"task {task} to finish",
                           lambda job=job_id: (s := queue_status(job)) in ("DONE", "ERROR") and s,
                           300)
                for task, job_id in jobs.items()}
    assert finished == {"ab/0001": "DONE", "cd/0002": "ERROR", "ef/0003": "ERROR"}

    def exit_code(task: str) -> str | None:
        """FloatTaskHandler.readExitStatus: .exitcode in the work dir first, then rc."""
        try:
            body = s3.get_object(Bucket=BUCKET, Key=f"work/{task}/.exitcode")["Body"].read()
            return body.decode().strip()
        except s3.exceptions.NoSuchKey:
            rc = RC.search(nf("show", "-j", jobs[task]).out)
            return rc.group(1).strip('"') if rc else None

    assert exit_code("ab/0001") == "0" and exit_code("cd/0002") == "3"
    out = s3.get_object(Bucket=BUCKET, Key="work/ab/0001/.command.out")["Body"].read().decode()
    # The keys reached the task through `float secret get` inside its container.
    assert out == f"key={ACCESS_KEY} secret={SECRET_KEY}\naligned\n"
    err = s3.get_object(Bucket=BUCKET, Key="work/cd/0002/.command.err")["Body"].read().decode()
    assert err == "failing\n"
    cancelled = nf("show", "-j", jobs["ef/0003"])
    assert _status(cancelled.out) == "Cancelled"
    rc = RC.search(nf("show", "-j", jobs["cd/0002"]).out)
    assert rc and rc.group(1).strip('"') == "3"

    # FloatGridExecutor.shutdown: the secrets go.
    for name in (f"AWS_ACCESS_KEY_ID_{SECRET_RUN}", f"AWS_SECRET_ACCESS_KEY_{SECRET_RUN}"):
        assert nf("secret", "unset", name).code == 0
    assert nf("secret", "get", f"AWS_ACCESS_KEY_ID_{SECRET_RUN}").code != 0
    for job_id in jobs.values():
        assert not local.live_instances(job_id)
