"""Users' secrets through the real routes: kept in Secrets Manager per user, read back only by
name by their owner or the owner's own jobs, never listed with their values."""

import json
from urllib.parse import quote

import pytest

from chalicelib.auth import issue_job_token
from chalicelib.wire.status import JobStatus
from chalicelib.wire.vault import MAX_SECRET_BYTES
from tests.functional.jobs_helpers import seed_job

NAME, VALUE = "AWS_ACCESS_KEY_ID_MY-RUN", "AKIA-NEVER-IN-A-TABLE"


def _everything_stored(runtime) -> str:
    config = runtime.config
    tables = [config.jobs_table, config.images_table, config.users_table, config.licenses_table,
              config.usage_table, config.storage_table]
    return json.dumps([runtime.dynamodb.scan(TableName=t)["Items"] for t in tables])


def test_a_secret_set_is_read_back_and_set_again_replaces_it(alice, runtime):
    first = alice.request("PUT", f"/v1/secrets/{NAME}", body={"value": VALUE})
    assert first.status_code == 200, first.body
    assert first.json_body["name"] == NAME and VALUE not in first.body.decode()
    assert alice.get(f"/v1/secrets/{NAME}").json_body == {"name": NAME, "value": VALUE}

    alice.request("PUT", f"/v1/secrets/{NAME}", body={"value": "second"})
    assert alice.get(f"/v1/secrets/{NAME}").json_body["value"] == "second"
    assert VALUE not in _everything_stored(runtime) and "second" not in _everything_stored(runtime)


def test_listing_names_secrets_but_never_their_values(alice, bob):
    for name in ("b.token", NAME, "a_key"):
        alice.request("PUT", f"/v1/secrets/{name}", body={"value": f"value-of-{name}"})
    bob.request("PUT", "/v1/secrets/bobs", body={"value": "bob-value"})

    listed = alice.get("/v1/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json_body["items"]] == [NAME, "a_key", "b.token"]
    assert "value-of" not in listed.body.decode()
    assert all(s["updateTime"] for s in listed.json_body["items"])
    assert [s["name"] for s in bob.get("/v1/secrets").json_body["items"]] == ["bobs"]


def test_each_user_reaches_only_their_own_secrets(alice, bob, admin):
    alice.request("PUT", "/v1/secrets/shared-name", body={"value": "alices"})
    bob.request("PUT", "/v1/secrets/shared-name", body={"value": "bobs"})
    assert alice.get("/v1/secrets/shared-name").json_body["value"] == "alices"
    assert bob.get("/v1/secrets/shared-name").json_body["value"] == "bobs"

    refused = admin.get("/v1/secrets/shared-name")
    assert refused.status_code == 404
    assert bob.delete("/v1/secrets/shared-name").status_code == 200
    assert alice.get("/v1/secrets/shared-name").json_body["value"] == "alices"


def test_an_unknown_secret_is_a_404_naming_it(alice):
    for method in ("GET", "DELETE"):
        missing = alice.request(method, "/v1/secrets/NOPE")
        assert missing.status_code == 404
        assert missing.json_body["message"] == "secret NOPE does not exist"


def test_unset_removes_the_secret(alice):
    alice.request("PUT", f"/v1/secrets/{NAME}", body={"value": VALUE})
    assert alice.delete(f"/v1/secrets/{NAME}").json_body["name"] == NAME
    assert alice.get(f"/v1/secrets/{NAME}").status_code == 404
    assert alice.get("/v1/secrets").json_body["items"] == []


@pytest.mark.parametrize(("name", "body", "words"), [
    ("has%20space", {"value": "x"}, "is not a secret name"),
    ("a" * 129, {"value": "x"}, "is not a secret name"),
    ("ok", {"value": ""}, "a secret cannot be empty"),
    ("ok", {"value": "x" * (MAX_SECRET_BYTES + 1)}, f"the limit is {MAX_SECRET_BYTES}"),
    ("ok", {}, "is required"),
    ("ok", {"value": "x", "colour": "red"}, "is not a known field"),
])
def test_bad_secrets_are_refused_with_the_reason(alice, name, body, words):
    refused = alice.request("PUT", f"/v1/secrets/{name}", body=body)
    assert refused.status_code == 400
    assert words in refused.json_body["message"]
    assert alice.get("/v1/secrets").json_body["items"] == []


def test_a_jobs_own_token_reads_its_owners_secrets_and_nothing_more(alice, bob, runtime, store,
                                                                     client):
    from tests.conftest import Caller

    alice.request("PUT", f"/v1/secrets/{NAME}", body={"value": VALUE})
    bob.request("PUT", "/v1/secrets/bobs", body={"value": "bob-value"})
    seed_job(runtime, store, "job-a", JobStatus.EXECUTING, owner="alice")
    token = runtime.secrets.get_secret_value(
        SecretId=issue_job_token(runtime, "job-a", "alice"))["SecretString"]
    job = Caller(client, token)

    assert job.get(f"/v1/secrets/{NAME}").json_body == {"name": NAME, "value": VALUE}
    assert job.get("/v1/secrets/bobs").status_code == 404
    for method, path, body in (("PUT", f"/v1/secrets/{NAME}", {"value": "x"}),
                               ("DELETE", f"/v1/secrets/{NAME}", None),
                               ("GET", "/v1/secrets", None)):
        refused = job.request(method, path, body=body)
        assert refused.status_code == 403, (method, path)
        assert "read its owner's secrets" in refused.json_body["message"]
    assert alice.get(f"/v1/secrets/{NAME}").json_body["value"] == VALUE


def test_a_long_list_comes_in_pages_whatever_limit_is_asked(alice):
    for index in range(7):
        alice.request("PUT", f"/v1/secrets/S{index}", body={"value": "v"})
    seen, token = [], None
    while True:
        page = alice.get("/v1/secrets?limit=3" + (f"&nextToken={quote(token)}" if token else "")).json_body
        seen += [s["name"] for s in page["items"]]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(seen) == [f"S{i}" for i in range(7)]
    assert alice.get("/v1/secrets?limit=500").status_code == 200
