"""S3 data volumes: mounted for the job, kept out of its checkpoint, mounted again where it moves."""

import json
import os

from chalicelib.wire.agent import RunCommand
from tests.containers.conftest import BUSYBOX, wait_for

# Reads its input once, counts in memory, and writes its result to the rw volume at the end.
SCRIPT = """\
input=$(cat /mnt/in/sample.txt)
i=0
while [ $i -lt 30 ]; do i=$((i+1)); echo $i; sleep 0.1; done
echo "$input counted to $i" > /mnt/out/result.txt
echo finished
"""


def test_s3_volumes_are_mounted_again_after_a_move(served_fleet):
    fleet = served_fleet
    s3 = fleet.aws.client("s3")
    s3.create_bucket(Bucket="lab-inputs")
    s3.create_bucket(Bucket="lab-results")
    s3.put_object(Bucket="lab-inputs", Key="run-7/sample.txt", Body=b"NA12878")
    launch = fleet.launch("withdata", BUSYBOX, SCRIPT, dataVolumes=[
        "[mode=r]s3://lab-inputs/run-7:/mnt/in", "[mode=rw]s3://lab-results/run-7:/mnt/out"])
    first, second = fleet.agent("i-data-1"), fleet.agent("i-data-2")
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: first.watch_job() or len(fleet.stdout("withdata").splitlines()) >= 5, 30,
             "the job to start counting")
    manifest = first.checkpoint("withdata", "move")
    assert not (fleet.job_root / "withdata" / "volumes" / "0" / "sample.txt").exists()  # unmounted
    assert manifest.archiveSize < 5 * 2**20  # the volumes' data is not in the image
    second.restore(launch)
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    assert fleet.stdout("withdata").splitlines()[-1] == "finished"
    result = s3.get_object(Bucket="lab-results", Key="run-7/result.txt")["Body"].read()
    assert result == b"NA12878 counted to 30\n"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="lab-inputs")["Contents"]] == [
        "run-7/sample.txt"]


def test_volumes_with_their_own_keys_are_mounted_with_them(served_fleet):
    fleet = served_fleet
    s3 = fleet.aws.client("s3")
    s3.create_bucket(Bucket="lab-keyed")
    s3.put_object(Bucket="lab-keyed", Key="in/sample.txt", Body=b"NA12878")
    keys = {"/mnt/in": {"accessKey": "reader-ak", "secretKey": "reader/sk"},
            "/mnt/out": {"accessKey": "writer-ak", "secretKey": "writer-sk",
                         "sessionToken": "writer-session-token"}}
    fleet.aws.client("secretsmanager").create_secret(Name="keyed-volume-keys",
                                                     SecretString=json.dumps(keys))
    endpoint = os.environ["AWS_ENDPOINT_URL"]  # http://127.0.0.1:PORT, scheme and all
    launch = fleet.launch("keyed", BUSYBOX, "cat /mnt/in/sample.txt > /mnt/out/copy.txt\n",
                          volumeKeysSecretId="keyed-volume-keys", dataVolumes=[
        "[mode=r,credentials=stored]s3://lab-keyed/in:/mnt/in",
        f"[mode=rw,credentials=stored,endpoint={endpoint}]s3://lab-keyed/out:/mnt/out"])
    agent = fleet.agent("i-keyed")
    agent.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    # The keys without a token went to a root-only file; the token's, to s3fs's environment.
    passwd = fleet.job_root / "keyed" / "keys" / "s3fs-0"
    assert passwd.read_text() == "reader-ak:reader/sk\n"
    assert passwd.stat().st_mode & 0o777 == 0o600
    assert not (fleet.job_root / "keyed" / "keys" / "s3fs-1").exists()
    wait_for(lambda: agent.watch_job() or agent.job is None, 60, "the job to finish")
    assert s3.get_object(Bucket="lab-keyed", Key="out/copy.txt")["Body"].read() == b"NA12878"
    assert not passwd.exists()  # unmounted, and the keys with it
