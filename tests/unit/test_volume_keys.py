"""How the agent hands a volume's own S3 keys to s3fs, and how a job's in-job float calls are
trimmed to what the agent serves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent import volumes
from agent.jobcalls import without_address
from agent.volumes import S3Access, access_for, s3fs_mount, volume_keys
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.failures import JobStartFailed

AGENT = S3Access(endpoint="http://127.0.0.1:5000", access_key="agent-ak", secret_key="agent-sk")
PASSWD = Path("/jobs/j/keys/s3fs-0")


def _stored(text: str) -> DataVolume:
    return DataVolume.model_validate(text).model_copy(update={"credentials": "stored"})


def _options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_a_volumes_own_keys_go_to_s3fs_in_its_password_file():
    volume = _stored("[mode=r,endpoint=https://minio.lab:9000]s3://lab/run-7:/mnt/in")
    keys = volume_keys(json.dumps({"/mnt/in": {"accessKey": "AK1", "secretKey": "SK1"}}))

    call = s3fs_mount(volume, Path("/jobs/j/volumes/0"), access_for(volume, AGENT, keys), PASSWD)

    assert call.passwd == "AK1:SK1\n" and call.env == {}
    assert call.argv[:3] == ["s3fs", "lab:/run-7", "/jobs/j/volumes/0"]
    assert _options(call.argv) == ["nonempty", "allow_other", "ro", "url=https://minio.lab:9000",
                                   "use_path_request_style", f"passwd_file={PASSWD}"]
    assert "AK1" not in " ".join(call.argv) and "SK1" not in " ".join(call.argv)


def test_a_session_token_goes_to_s3fs_through_its_environment():
    volume = _stored("[endpoint=http://10.0.0.9:9000]s3://results:/mnt/out")
    keys = volume_keys(json.dumps({"/mnt/out": {"accessKey": "AK2", "secretKey": "SK2",
                                                "sessionToken": "T2"}}))

    call = s3fs_mount(volume, Path("/v/1"), access_for(volume, AGENT, keys), PASSWD)

    assert call.env == {"AWSACCESSKEYID": "AK2", "AWSSECRETACCESSKEY": "SK2",
                        "AWSSESSIONTOKEN": "T2"}
    assert call.passwd is None
    assert "use_session_token" in _options(call.argv)
    assert "url=http://10.0.0.9:9000" in _options(call.argv)
    assert "T2" not in " ".join(call.argv)


def test_a_volume_without_keys_uses_the_agents_and_a_bare_host_means_https():
    volume = DataVolume.model_validate("[endpoint=s3.example.com]s3://b/p:/mnt/x")

    call = s3fs_mount(volume, Path("/v/2"), access_for(volume, AGENT, {}), PASSWD)

    assert call.passwd == "agent-ak:agent-sk\n"
    assert "url=https://s3.example.com" in _options(call.argv)
    on_aws = s3fs_mount(volume, Path("/v/2"), S3Access(), PASSWD)
    assert "iam_role=auto" in _options(on_aws.argv) and on_aws.passwd is None


def test_a_volume_whose_keys_were_not_handed_over_fails_to_start():
    volume = _stored("s3://b:/mnt/b")
    with pytest.raises(JobStartFailed, match="S3 keys of the volume at /mnt/b"):
        access_for(volume, AGENT, {})


@pytest.mark.parametrize(("args", "kept"), [
    (["secret", "get", "K", "-a", "10.0.0.1"], ["secret", "get", "K"]),
    (["-a", "http://opcenter:8787", "secret", "get", "K"], ["secret", "get", "K"]),
    (["secret", "get", "K", "--address=x"], ["secret", "get", "K"]),
    (["secret", "get", "K", "--address", "x", "-F", "json"], ["secret", "get", "K", "-F", "json"]),
    (["secret", "get", "K", "-a"], ["secret", "get", "K"]),
    (["show", "--format", "json"], ["show", "--format", "json"]),
])
def test_the_in_job_float_ignores_the_address_a_job_script_passes(args, kept):
    assert without_address(args) == kept


def _s3fs_refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv, **_):
        return subprocess.CompletedProcess(argv, 1, "", "s3fs: could not access bucket: 403")
    monkeypatch.setattr(volumes.subprocess, "run", refuse)


def test_a_bucket_the_instance_role_cannot_reach_names_what_would_let_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _s3fs_refusing(monkeypatch)
    volume = DataVolume.model_validate("[mode=rw]s3://genomics-raw/run1:/mnt/raw")
    with pytest.raises(JobStartFailed) as refused:
        volumes._mount_s3(volume, tmp_path / "0", S3Access(), tmp_path / "keys")
    assert str(refused.value) == (
        "cannot mount s3://genomics-raw/run1 at /mnt/raw: s3fs: could not access bucket: 403 "
        "(mounted with the instance's role, as the volume brought no keys: the stack's "
        "WorkerDataBuckets must name genomics-raw, or the volume must bring its keys)")
    # With keys of its own, the role is not the question.
    with pytest.raises(JobStartFailed) as refused:
        volumes._mount_s3(volume, tmp_path / "0", AGENT, tmp_path / "keys")
    assert "WorkerDataBuckets" not in str(refused.value)
