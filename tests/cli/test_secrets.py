"""`float secret ...`, `float storage ...` and `submit --storage`: what is sent, what is printed,
and that values and keys never appear in the output."""

from __future__ import annotations

import io
import json

from tests.cli.fake_opcenter import PASSWORD, job_json

NAME = "AWS_ACCESS_KEY_ID_MY-RUN"
SET = {"name": NAME, "updateTime": "2024-05-01T10:00:00Z"}
STORAGE = {"name": "input-data", "owner": "alice", "kind": "s3", "source": "s3://lab/run-7",
           "mountPath": "/mnt/in", "mode": "r", "endpoint": "https://minio.lab:9000",
           "credentials": "stored", "createTime": "2024-05-01T10:00:00Z"}


def test_secret_set_as_nf_float_calls_it_puts_the_value_and_never_prints_it(opcenter, run):
    opcenter.reply("PUT", f"/v1/secrets/{NAME}", SET)

    result = run("-a", opcenter.address, "-u", "alice", "-p", PASSWORD, "secret", "set", NAME,
                 "AKIA-VALUE")

    assert result.code == 0, result.err
    put = opcenter.requests[-1]
    assert (put.method, put.path, put.body) == ("PUT", f"/v1/secrets/{NAME}", {"value": "AKIA-VALUE"})
    assert "AKIA-VALUE" not in result.out + result.err
    assert f"name: {NAME}" in result.out


def test_secret_set_reads_the_value_from_stdin(logged_in, run, monkeypatch):
    logged_in.reply("PUT", "/v1/secrets/token", SET)
    monkeypatch.setattr("sys.stdin", io.StringIO("multi\nline\n"))

    result = run("secret", "set", "token", "--stdin")

    assert result.code == 0, result.err
    assert logged_in.requests[-1].body == {"value": "multi\nline"}


def test_secret_get_prints_the_bare_value_whatever_the_format(logged_in, run):
    logged_in.reply("GET", f"/v1/secrets/{NAME}", {"name": NAME, "value": "AKIA-VALUE"})

    for extra in ((), ("--format", "json")):
        result = run("secret", "get", NAME, *extra)
        assert (result.code, result.out, result.err) == (0, "AKIA-VALUE\n", "")


def test_an_unknown_secret_is_one_line_on_stderr_and_a_failure(logged_in, run):
    missing = {"error": "NotFound", "message": "secret NOPE does not exist"}
    logged_in.reply("GET", "/v1/secrets/NOPE", missing, status=404)
    logged_in.reply("DELETE", "/v1/secrets/NOPE", missing, status=404)

    for verb in ("get", "unset"):
        result = run("secret", verb, "NOPE")
        assert (result.code, result.out, result.err) == (
            1, "", "float: secret NOPE does not exist\n")


def test_secret_ls_lists_names_in_every_format(logged_in, run):
    logged_in.reply("GET", "/v1/secrets", {"items": [SET], "nextToken": "p2"})
    logged_in.reply("GET", "/v1/secrets", {"items": [{"name": "b.token", "updateTime": None}]})

    listed = run("secret", "ls", "--format", "json")
    logged_in.replies.clear()
    logged_in.reply("GET", "/v1/secrets", {"items": [SET]})
    table = run("secret", "ls", "-F", "table")

    assert [s["name"] for s in json.loads(listed.out)] == [NAME, "b.token"]
    assert table.out.splitlines()[0].split() == ["NAME", "UPDATE", "TIME"]
    assert table.out.splitlines()[1].split() == [NAME, "2024-05-01T10:00:00Z"]
    assert "AKIA" not in listed.out + table.out


def test_a_bad_secret_is_refused_before_anything_is_sent(logged_in, run):
    result = run("secret", "set", "ok", "")

    assert (result.code, result.err) == (1, "float: value: a secret cannot be empty\n")
    assert logged_in.requests == []


def test_storage_register_sends_the_mmcloud_flags_and_never_prints_the_keys(logged_in, run):
    logged_in.reply("POST", "/v1/storage", STORAGE, status=201)

    result = run("storage", "register", "-n", "input-data", "-t", "s3", "-b", "lab/run-7",
                 "-m", "/mnt/in", "-k", "AKIA-STORAGE", "-s", "SECRET-STORAGE",
                 "-e", "https://minio.lab:9000", "--mode", "r", "-F", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[-1].body == {
        "name": "input-data", "kind": "s3", "mountPath": "/mnt/in", "bucket": "lab/run-7",
        "mode": "r", "endpoint": "https://minio.lab:9000", "accessKey": "AKIA-STORAGE",
        "secretKey": "SECRET-STORAGE"}
    assert "AKIA-STORAGE" not in result.out and "SECRET-STORAGE" not in result.out
    assert "CREDENTIALS:" in result.out and "stored" in result.out


def test_storage_register_of_nfs_and_its_mistakes(logged_in, run):
    nfs = {**STORAGE, "kind": "nfs", "source": "nfs://10.0.0.5/export", "endpoint": None,
           "credentials": None, "mode": "rw", "name": "shared"}
    logged_in.reply("POST", "/v1/storage", nfs, status=201)

    wrong = run("storage", "register", "-n", "shared", "-t", "nfs", "-m", "/mnt/s",
                "--server", "10.0.0.5")
    right = run("storage", "register", "-n", "shared", "-t", "nfs", "-m", "/mnt/s",
                "--server", "10.0.0.5", "--path", "/export")

    assert (wrong.code, wrong.err) == (
        1, "float: nfs storage needs server and path (the exported directory)\n")
    assert right.code == 0, right.err
    assert logged_in.requests[-1].body == {"name": "shared", "kind": "nfs", "mountPath": "/mnt/s",
                                           "server": "10.0.0.5", "path": "/export"}


def test_storage_list_and_remove(logged_in, run):
    logged_in.reply("GET", "/v1/storage", {"items": [STORAGE]})
    logged_in.reply("DELETE", "/v1/storage/input-data", STORAGE)

    listed = run("storage", "list", "--format", "json")
    removed = run("storage", "remove", "input-data")
    by_flag = run("storage", "remove", "-n", "input-data")
    neither = run("storage", "remove")

    assert json.loads(listed.out)[0]["source"] == "s3://lab/run-7"
    assert removed.code == 0 and by_flag.code == 0
    assert [r.method for r in logged_in.requests] == ["GET", "DELETE", "DELETE"]
    assert neither.code == 2 and "float storage remove NAME" in neither.err


def test_submit_sends_each_storage_name(logged_in, run, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("ls /mnt/in\n")
    logged_in.reply("POST", "/v1/jobs", job_json("job-9", "Submitted"), status=201)

    result = run("submit", "-i", "bwa", "-j", str(script), "--storage", "input-data",
                 "--storage", "refs", "--dataVolume",
                 "[mode=rw,accesskey=AK,secret=SK,endpoint=https://h:9000]s3://b:/b")

    assert result.code == 0, result.err
    body = logged_in.requests[-1].body
    assert body["storage"] == ["input-data", "refs"]
    assert body["dataVolumes"] == ["[mode=rw,accesskey=AK,secret=SK,endpoint=https://h:9000]s3://b:/b"]
