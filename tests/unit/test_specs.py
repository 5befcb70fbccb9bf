"""Parsing what `float submit` users type, and the errors they get for typos."""

import pytest
from pydantic import ValidationError

from chalicelib.wire.api import MAX_JOB_SCRIPT_BYTES, SubmitRequest, first_problem
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.specs import CpuRange, MigratePolicy, Range, VmPolicy


def _error(model, value):
    with pytest.raises(ValidationError) as raised:
        model.model_validate(value)
    return str(raised.value)


def test_exact_amounts_and_ranges():
    assert CpuRange.model_validate("2:8").model_dump() == {"min": 2, "max": 8}
    assert CpuRange.model_validate(4).model_dump() == {"min": 4, "max": 4}
    assert Range.model_validate("0.5:16").model_dump() == {"min": 0.5, "max": 16}
    assert str(Range.model_validate("4")) == "4"


@pytest.mark.parametrize("text, words", [
    ("8:2", "larger than MAX"), ("two", "MIN:MAX"), ("0", "greater than 0"), ("2.5", "integer"),
])
def test_bad_cpu_ranges_say_what_is_wrong(text, words):
    assert words in _error(CpuRange, text)


def test_vm_policies_in_mmcloud_spelling():
    spot_first = VmPolicy.model_validate("[spotFirst=true,retryLimit=10,retryInterval=900s]")
    assert (spot_first.spotFirst, spot_first.retryLimit, spot_first.retryInterval) == (True, 10, 900)
    assert VmPolicy.model_validate("[onDemand=true]").onDemand
    assert VmPolicy.model_validate("[spotOnly=true]").retryLimit is None
    default = VmPolicy()
    assert default.spotFirst and default.retryLimit == 3 and default.retryInterval == 600
    assert VmPolicy.model_validate("[spotFirst=true,retryInterval=15m]").retryInterval == 900


@pytest.mark.parametrize("text", ["[spotOnly=true]", "[onDemand=true]", "[spotFirst=true]"])
def test_vm_policies_read_back_from_their_own_json(text):
    policy = VmPolicy.model_validate(text)
    assert VmPolicy.model_validate_json(policy.model_dump_json()) == policy


@pytest.mark.parametrize("text, words", [
    ("[spotOnly=true,onDemand=true]", "choose one"),
    ("[spotOnly=true,retryLimit=3]", "go with spotFirst"),
    ("[spotFrist=true]", "unknown vmPolicy key 'spotFrist'"),
    ("[spotFirst=maybe]", "true or false"),
    ("[spotFirst=true,retryInterval=soon]", "duration"),
])
def test_bad_vm_policies_name_the_problem(text, words):
    assert words in _error(VmPolicy, text)


def test_migrate_policy_keys():
    policy = MigratePolicy.model_validate(
        "[cpu.upperBoundRatio=80,cpu.upperBoundDuration=2m,mem.step=8,mem.disable=true,evadeOOM=true]"
    )
    assert policy.cpu.upperBoundRatio == 80 and policy.cpu.upperBoundDuration == 120
    assert policy.mem.step == 8 and policy.mem.disable and policy.evadeOOM
    assert policy.cpu.lowerBoundRatio == 5 and policy.mem.upperBoundRatio == 90


@pytest.mark.parametrize("text, words", [
    ("[cpu.upperBound=80]", "unknown migratePolicy key 'cpu.upperBound'"),
    ("[cpu.upperBoundRatio=5,cpu.lowerBoundRatio=10]", "must be below"),
    ("[gpu.step=1]", "unknown migratePolicy key"),
])
def test_bad_migrate_policies_name_the_key(text, words):
    assert words in _error(MigratePolicy, text)


def test_data_volumes_of_every_kind():
    block = DataVolume.model_validate("[size=60]:/mnt/x")
    assert (block.kind, block.size, block.mountPath) == ("block", 60, "/mnt/x")
    s3 = DataVolume.model_validate("[mode=r,endpoint=s3.example.com]s3://bucket/prefix:/mnt/data")
    assert (s3.kind, s3.source, s3.mode, s3.endpoint) == ("s3", "s3://bucket/prefix", "r", "s3.example.com")
    nfs = DataVolume.model_validate("nfs://host/export:/mnt/shared")
    assert (nfs.kind, nfs.source, nfs.mode) == ("nfs", "nfs://host/export", "rw")
    assert DataVolume.model_validate(str(s3)) == s3


@pytest.mark.parametrize("text, words", [
    ("[size=60]:mnt/x", "absolute path"),
    (":/mnt/x", "needs [size=GB]"),
    ("http://x/y:/mnt", "unsupported volume source"),
    ("[size=10]s3://b/p:/mnt", "size goes with new block volumes"),
    ("[colour=red]:/mnt/x", "unknown dataVolume option 'colour'"),
    ("/mnt/x", "SOURCE:/mount/path"),
    ("[size=1]:/mnt/../etc", "absolute path"),
])
def test_bad_data_volumes_say_why(text, words):
    assert words in _error(DataVolume, text)


def test_job_script_size_limit_is_stated():
    message = _error(SubmitRequest, {"image": "a/b", "jobScript": "x" * (MAX_JOB_SCRIPT_BYTES + 1)})
    assert f"the limit is {MAX_JOB_SCRIPT_BYTES}" in message


def test_two_volumes_cannot_share_a_mount_point():
    body = {"image": "a/b", "jobScript": "x", "dataVolumes": ["[size=1]:/m", "nfs://h/e:/m"]}
    assert "mounted at /m" in _error(SubmitRequest, body)


@pytest.mark.parametrize("text, shown", [
    ("[spotFirst=true,retryLimit=5,retryInterval=10m]",
     "[spotFirst=true,retryLimit=5,retryInterval=600s]"),
    ("[onDemand=true]", "[onDemand=true]"),
    ("[spotOnly=true]", "[spotOnly=true]"),
])
def test_a_vm_policy_reads_back_as_the_flag_would_be_written(text, shown):
    assert str(VmPolicy.model_validate(text)) == shown
    assert VmPolicy.model_validate(str(VmPolicy.model_validate(text))) == VmPolicy.model_validate(text)


def test_a_migrate_policy_shows_only_what_differs_from_the_defaults():
    policy = MigratePolicy.model_validate("[cpu.upperBoundRatio=70,mem.step=8,evadeOOM=true]")

    assert str(policy) == "[cpu.upperBoundRatio=70,mem.step=8,evadeOOM=true]"
    assert MigratePolicy.model_validate(str(policy)) == policy
    assert str(MigratePolicy()) == "[]"


def test_s3_keys_are_read_from_the_options_and_never_written_out():
    volume = DataVolume.model_validate(
        "[mode=rw,accesskey=AKIA1,secret=s/k+1=,token=tok,endpoint=https://minio:9000]"
        "s3://bucket/work:/bucket")
    assert volume.keys() == {"accessKey": "AKIA1", "secretKey": "s/k+1=", "sessionToken": "tok"}
    assert volume.endpoint == "https://minio:9000"
    for text in (str(volume), repr(volume), volume.model_dump_json()):
        assert "AKIA1" not in text and "s/k+1=" not in text and "tok" not in text
    assert str(volume) == "[mode=rw,endpoint=https://minio:9000,credentials=stored]s3://bucket/work:/bucket"


@pytest.mark.parametrize(("text", "words"), [
    ("[accesskey=AKIA1]s3://b:/b", "need both accesskey= and secret="),
    ("[accesskey=AKIA1,secret=x]nfs://h/e:/b", "go with s3:// volumes"),
    ("[endpoint=ftp://minio]s3://b:/b", "is not host[:port]"),
    ("[endpoint=https://minio/path]s3://b:/b", "is not host[:port]"),
    ("[secret=SEKRIT,accesskey=AKIA1,colour=red]s3://b:/b", "unknown dataVolume option 'colour'"),
])
def test_bad_s3_options_say_why_without_echoing_the_keys(text, words):
    # As the API and the CLI word it (pydantic's own text would quote the input whole).
    with pytest.raises(ValidationError) as raised:
        DataVolume.model_validate(text)
    message = first_problem(raised.value)[1]
    assert words in message
    assert "SEKRIT" not in message and "AKIA1" not in message


@pytest.mark.parametrize("endpoint", ["minio.lab", "minio.lab:9000", "http://10.0.0.9:9000",
                                      "https://s3.us-east-1.amazonaws.com"])
def test_an_endpoint_may_carry_its_scheme(endpoint):
    volume = DataVolume.model_validate(f"[endpoint={endpoint}]s3://b:/b")
    assert volume.endpoint == endpoint
