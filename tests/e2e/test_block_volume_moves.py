"""A new block volume is an EBS volume that follows its job: what the job wrote to it on the
instance that was reclaimed is there on the replacement. In the local mode each volume is a
directory of its own that only the instance it is attached to sees, so a volume that did not
follow the job would be missing, or empty, on the replacement."""

from __future__ import annotations

import json
import re

import boto3

from localmode.demo import final_job, last_step, wait_until
from tests.e2e.conftest import python_image

STEPS = 40
JOB = f"""#!/bin/sh
i=0
while [ $i -lt {STEPS} ]; do
  i=$((i+1))
  echo "n=$i" >> /mnt/scratch/journal
  echo "step $i/{STEPS}"
  sleep 0.5
done
echo "journal has $(wc -l < /mnt/scratch/journal) lines, last: $(tail -n 1 /mnt/scratch/journal)"
"""


def _volumes(local, job_id):
    ec2 = boto3.client("ec2", endpoint_url=local.aws_endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    # The job's data volumes (its instances' root volumes carry its tag too).
    return ec2.describe_volumes(Filters=[{"Name": "tag:openfloat:job", "Values": [job_id]},
                                         {"Name": "tag-key", "Values": ["openfloat:opcenter"]}])[
        "Volumes"]


def _moved(cli, job_id, first):
    """The job once it has left its first instance: running elsewhere, or ended."""
    job = cli.job(job_id)
    moved = job["status"] == "Executing" and job["instanceId"] not in (None, first)
    return job if moved or job["status"] not in ("Executing", "Capturing", "Floating") else None


def test_a_scratch_volume_follows_its_job_across_a_reclaim_and_goes_when_it_ends(
        local, admin_cli, tmp_path):
    (tmp_path / "job.sh").write_text(JOB)
    job_id = json.loads(admin_cli(
        "submit", "-i", python_image(admin_cli), "-j", str(tmp_path / "job.sh"),
        "--dataVolume", "[size=5]:/mnt/scratch", "--format", "json"))["id"]
    wait_until("the job to reach step 6", lambda: last_step(admin_cli.stdout(job_id)) >= 6,
               timeout=240)
    first = admin_cli.job(job_id)["instanceId"]
    (volume,) = _volumes(local, job_id)
    assert volume["Size"] == 5 and [a["InstanceId"] for a in volume["Attachments"]] == [first]
    admin_cli("reclaim", "-j", job_id, "--notice", "30")
    shown = wait_until("the job to run on its replacement", lambda: _moved(admin_cli, job_id, first),
                       timeout=240)
    assert shown["status"] == "Executing", shown["history"]
    second = shown["instanceId"]
    (moved,) = _volumes(local, job_id)
    assert moved["VolumeId"] == volume["VolumeId"]
    assert [a["InstanceId"] for a in moved["Attachments"]] == [second]
    job = final_job(admin_cli, job_id, timeout=300)

    assert job["status"] == "Completed", job["history"]
    [move] = job["migrations"]
    assert (move["fromInstance"], move["toInstance"], move["rerun"]) == (first, second, False)
    stdout = admin_cli.stdout(job_id)
    steps = [int(n) for n in re.findall(r"(?m)^step (\d+)/", stdout)]
    assert sorted(set(steps)) == list(range(1, STEPS + 1))
    # Every step's line, written on either host, is on the one volume: each step once.
    assert f"journal has {STEPS} lines, last: n={STEPS}" in stdout
    wait_until("the job's volume to be deleted", lambda: _volumes(local, job_id) == [],
               timeout=120)
    wait_until("the job's instances to be released", lambda: not local.live_instances(job_id),
               timeout=60)
