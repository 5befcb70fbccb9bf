"""Named storage and S3 keys on data volumes: registered once per user, resolved into the job's
own volumes at submit, the keys kept in Secrets Manager only, handed to the job's agent by
reference, and deleted when the job ends."""

import json
import time

import pytest

from chalicelib import endings, jobs
from chalicelib.auth import Principal
from chalicelib.volumes import keys_secret_id
from chalicelib.wire.api import SubmitRequest
from chalicelib.wire.status import JobStatus
from chalicelib.wire.tasks import Verdict
from tests.functional.test_secrets import _everything_stored
from tests.functional.workflow_helpers import simulated_agent

AK, SK, TOKEN = "AKIASTORAGEKEY", "storage/secret+key", "session-token-xyz"
S3 = {"name": "input-data", "kind": "s3", "bucket": "lab-inputs/run-7", "mountPath": "/mnt/in",
      "mode": "r", "endpoint": "https://minio.lab:9000", "accessKey": AK, "secretKey": SK}
NFS = {"name": "shared", "kind": "nfs", "server": "10.0.0.5", "path": "/export/shared",
       "mountPath": "/mnt/shared"}


def _keys(runtime, job_id):
    value = runtime.secrets.get_secret_value(SecretId=keys_secret_id(runtime, job_id))
    return json.loads(value["SecretString"])


def _secret_names(runtime):
    return [s["Name"] for s in runtime.secrets.list_secrets()["SecretList"]]


def test_registered_storage_is_listed_without_its_keys(alice, bob, runtime):
    for body in (S3, NFS):
        registered = alice.post("/v1/storage", body)
        assert registered.status_code == 201, registered.body
    listed = alice.get("/v1/storage")
    assert [(s["name"], s["kind"], s["source"], s["mountPath"], s["credentials"])
            for s in listed.json_body["items"]] == [
        ("input-data", "s3", "s3://lab-inputs/run-7", "/mnt/in", "stored"),
        ("shared", "nfs", "nfs://10.0.0.5/export/shared", "/mnt/shared", None)]
    assert listed.json_body["items"][0]["endpoint"] == "https://minio.lab:9000"
    assert bob.get("/v1/storage").json_body["items"] == []
    for text in (listed.body.decode(), _everything_stored(runtime)):
        assert AK not in text and SK not in text


def test_a_name_is_registered_once_and_removed_with_its_keys(alice, runtime):
    alice.post("/v1/storage", S3)
    again = alice.post("/v1/storage", {**S3, "bucket": "other"})
    assert again.status_code == 409 and "already registered" in again.json_body["message"]
    assert len([n for n in _secret_names(runtime) if "/storage/" in n]) == 1

    assert alice.delete("/v1/storage/input-data").json_body["name"] == "input-data"
    assert [n for n in _secret_names(runtime) if "/storage/" in n] == []
    missing = alice.delete("/v1/storage/input-data")
    assert missing.status_code == 404
    assert missing.json_body["message"] == "storage input-data is not registered"


@pytest.mark.parametrize(("body", "words"), [
    ({**S3, "bucket": None}, "s3 storage needs a bucket"),
    ({**NFS, "path": None}, "nfs storage needs server and path"),
    ({**NFS, "path": "export"}, "must be an absolute path"),
    ({**S3, "secretKey": None}, "need both accesskey= and secret="),
    ({**NFS, "accessKey": AK, "secretKey": SK}, "go with s3:// volumes"),
    ({**S3, "endpoint": "ftp://minio"}, "is not host[:port]"),
    ({**S3, "mountPath": "relative"}, "absolute path below /"),
    ({**S3, "name": "-bad"}, "name"),
])
def test_bad_storage_is_refused_with_the_reason(alice, body, words):
    refused = alice.post("/v1/storage", {k: v for k, v in body.items() if v is not None})
    assert refused.status_code == 400
    assert words in refused.json_body["message"]
    assert alice.get("/v1/storage").json_body["items"] == []


def test_submit_with_storage_mounts_it_with_its_keys_held_for_the_job(alice, runtime):
    alice.post("/v1/storage", S3)
    submitted = alice.post("/v1/jobs", {
        "image": "docker.io/library/busybox:1.36", "jobScript": "ls /mnt/in /mnt/out",
        "storage": ["input-data"],
        "dataVolumes": [f"[mode=rw,accesskey=OWNKEY,secret=OWNSECRET,token={TOKEN},"
                        "endpoint=http://10.0.0.9:9000]s3://lab-results:/mnt/out"]})
    assert submitted.status_code == 201, submitted.body
    job_id = submitted.json_body["id"]
    shown = alice.get(f"/v1/jobs/{job_id}")
    volumes = shown.json_body["dataVolumes"]
    assert [(v["source"], v["mountPath"], v["mode"], v["endpoint"], v["credentials"])
            for v in volumes] == [
        ("s3://lab-results", "/mnt/out", "rw", "http://10.0.0.9:9000", "stored"),
        ("s3://lab-inputs/run-7", "/mnt/in", "r", "https://minio.lab:9000", "stored")]
    assert _keys(runtime, job_id) == {
        "/mnt/out": {"accessKey": "OWNKEY", "secretKey": "OWNSECRET", "sessionToken": TOKEN},
        "/mnt/in": {"accessKey": AK, "secretKey": SK}}
    texts = [submitted.body.decode(), shown.body.decode(), alice.get("/v1/jobs").body.decode(),
             _everything_stored(runtime)]
    for text in texts:
        for key in (AK, SK, "OWNKEY", "OWNSECRET", TOKEN):
            assert key not in text

    # The job has its own copy: removing the storage leaves its keys alone.
    alice.delete("/v1/storage/input-data")
    assert _keys(runtime, job_id)["/mnt/in"] == {"accessKey": AK, "secretKey": SK}


def test_cancelling_a_job_deletes_its_volume_keys(alice, runtime):
    submitted = alice.post("/v1/jobs", {
        "image": "docker.io/library/busybox:1.36", "jobScript": "true",
        "dataVolumes": ["[accesskey=AK1,secret=SK1]s3://b:/mnt/b"]})
    job_id = submitted.json_body["id"]
    assert _keys(runtime, job_id) == {"/mnt/b": {"accessKey": "AK1", "secretKey": "SK1"}}
    assert alice.post(f"/v1/jobs/{job_id}/cancel", {}).json_body["status"] == "Cancelled"
    assert keys_secret_id(runtime, job_id) not in _secret_names(runtime)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"storage": ["nowhere"]}, 400, "storage nowhere is not registered"),
    ({"storage": ["input-data"], "dataVolumes": ["[size=5]:/mnt/in"]}, 400,
     "two data volumes are mounted at /mnt/in"),
    ({"dataVolumes": ["[credentials=stored]s3://b:/mnt/b"]}, 400, "has no keys"),
    ({"dataVolumes": ["[accesskey=AK]s3://b:/mnt/b"]}, 400, "need both accesskey= and secret="),
])
def test_bad_volumes_at_submit_name_the_problem_and_leave_nothing(alice, runtime, body, status,
                                                                  words):
    alice.post("/v1/storage", S3)
    before = _secret_names(runtime)
    refused = alice.post("/v1/jobs", {"image": "docker.io/library/busybox:1.36",
                                      "jobScript": "true", **body})
    assert refused.status_code == status
    assert words in refused.json_body["message"]
    assert "AK" not in refused.json_body["message"].replace(words, "")
    assert alice.get("/v1/jobs").json_body["items"] == []
    assert _secret_names(runtime) == before


def test_the_agent_gets_the_keys_by_reference_and_they_go_when_the_job_ends(flows):
    request = SubmitRequest.model_validate({
        "image": "docker.io/library/busybox:1.36", "jobScript": "true",
        "dataVolumes": ["[accesskey=AK2,secret=SK2]s3://lab/out:/mnt/out"]})
    seen: list = []
    job = jobs.submit(flows.runtime, flows.store, Principal("alice", "user"), request)
    simulated_agent(flows, None, True, seen, job_id=job.id)

    deadline = time.monotonic() + 60
    while flows.store.get_job(job.id).status != JobStatus.EXECUTING:
        assert time.monotonic() < deadline, flows.store.get_job(job.id).history
        time.sleep(0.1)
    (run,) = seen
    assert run.job.volumeKeysSecretId == keys_secret_id(flows.runtime, job.id)
    assert "AK2" not in run.model_dump_json() and "SK2" not in run.model_dump_json()
    assert run.job.dataVolumes[0].credentials == "stored"
    assert _keys(flows.runtime, job.id) == {"/mnt/out": {"accessKey": "AK2", "secretKey": "SK2"}}

    endings.settle(flows.runtime, flows.store, Verdict(jobId=job.id, exitCode=0, why="exited 0"))
    assert flows.store.get_job(job.id).status == JobStatus.COMPLETED
    assert keys_secret_id(flows.runtime, job.id) not in _secret_names(flows.runtime)


def test_deleting_a_user_deletes_their_secrets_and_storage(admin, make_user, runtime):
    carol = make_user("carol")
    carol.post("/v1/storage", S3)
    carol.request("PUT", "/v1/secrets/KEY", body={"value": "carols"})
    admin.request("PUT", "/v1/secrets/KEY", body={"value": "admins"})

    assert admin.delete("/v1/users/carol").status_code == 200
    again = make_user("carol")
    assert again.get("/v1/secrets").json_body["items"] == []
    assert again.get("/v1/storage").json_body["items"] == []
    assert [n for n in _secret_names(runtime) if "/users/carol/" in n] == []
    assert admin.get("/v1/secrets/KEY").json_body["value"] == "admins"
