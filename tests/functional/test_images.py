"""The Application Library: private credentials live only in Secrets Manager."""

import json

import pytest

USERNAME, TOKEN = "robot$reader", "tok-5f1c9a7e-NEVER-SHOWN"


def _everything_stored(runtime) -> str:
    """Every item of every table, as text."""
    config = runtime.config
    tables = [config.jobs_table, config.images_table, config.users_table, config.licenses_table,
              config.usage_table]
    return json.dumps([runtime.dynamodb.scan(TableName=t)["Items"] for t in tables])


def _secret_values(runtime) -> list[dict]:
    values = []
    for secret in runtime.secrets.list_secrets()["SecretList"]:
        if "/images/" in secret["Name"]:
            values.append(json.loads(runtime.secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"]))
    return values


def test_private_credentials_never_appear_in_tables_or_responses(alice, admin, runtime):
    bodies = []
    added = alice.post("/v1/images", {"name": "private-tool", "uri": "localhost:5000/lab/tool:1.0",
                                       "username": USERNAME, "token": TOKEN})
    assert added.status_code == 201 and added.json_body["private"] is True
    bodies.append(added.body)
    bodies.append(alice.get("/v1/images").body)
    bodies.append(alice.get("/v1/images/private-tool").body)
    job = alice.post("/v1/jobs", {"image": "private-tool", "jobScript": "run"})
    bodies += [job.body, alice.get(f"/v1/jobs/{job.json_body['id']}").body, alice.get("/v1/jobs").body]
    bodies.append(admin.get("/v1/openapi.json").body)
    updated = alice.patch("/v1/images/private-tool", {"uri": "localhost:5000/lab/tool:1.1"})
    bodies.append(updated.body)
    for text in bodies + [_everything_stored(runtime)]:
        assert USERNAME not in str(text) and TOKEN not in str(text)
    assert _secret_values(runtime) == [{"username": USERNAME, "token": TOKEN}]


def test_new_credentials_replace_the_old_secret_and_public_drops_it(alice, runtime):
    alice.post("/v1/images", {"name": "tool", "uri": "localhost:5000/tool:1",
                              "username": "old-user", "token": "old-token"})
    rotated = alice.patch("/v1/images/tool", {"username": "new-user", "token": "new-token"})
    assert rotated.status_code == 200 and rotated.json_body["private"] is True
    assert _secret_values(runtime) == [{"username": "new-user", "token": "new-token"}]
    public = alice.patch("/v1/images/tool", {"public": True})
    assert public.json_body["private"] is False and _secret_values(runtime) == []


def test_deleting_a_private_image_deletes_its_credentials(alice, runtime):
    alice.post("/v1/images", {"name": "tool", "uri": "localhost:5000/tool:1",
                              "username": USERNAME, "token": TOKEN})
    assert alice.delete("/v1/images/tool").json_body["name"] == "tool"
    assert _secret_values(runtime) == []
    assert alice.get("/v1/images/tool").status_code == 404
    assert alice.delete("/v1/images/tool").status_code == 404


def test_a_duplicate_name_is_a_conflict_and_creates_no_secret(alice, runtime):
    alice.post("/v1/images", {"name": "tool", "uri": "docker.io/lab/tool:1"})
    again = alice.post("/v1/images", {"name": "tool", "uri": "localhost:5000/tool:2",
                                      "username": USERNAME, "token": TOKEN})
    assert again.status_code == 409 and _secret_values(runtime) == []
    assert alice.get("/v1/images/tool").json_body["uri"] == "docker.io/lab/tool:1"


def test_only_the_owner_or_an_admin_changes_an_entry(alice, bob, admin):
    alice.post("/v1/images", {"name": "tool", "uri": "docker.io/lab/tool:1"})
    assert bob.get("/v1/images/tool").status_code == 200
    assert bob.patch("/v1/images/tool", {"uri": "evil.example/tool:1"}).status_code == 403
    assert bob.delete("/v1/images/tool").status_code == 403
    assert alice.get("/v1/images/tool").json_body["uri"] == "docker.io/lab/tool:1"
    assert admin.patch("/v1/images/tool", {"uri": "docker.io/lab/tool:2"}).status_code == 200
    assert admin.delete("/v1/images/tool").status_code == 200


@pytest.mark.parametrize("body, field, words", [
    ({"name": "Tool", "uri": "a/b"}, "name", "pattern"),
    ({"name": "tool", "uri": "not a uri"}, "uri", "image reference"),
    ({"name": "tool", "uri": "a/b", "username": "u"}, None, "both username and token"),
    ({"name": "tool", "uri": "a/b", "password": "p"}, "password", "not a known field"),
])
def test_bad_image_requests_name_the_problem(alice, body, field, words):
    response = alice.post("/v1/images", body)
    assert response.status_code == 400
    assert response.json_body.get("field") == field and words in response.json_body["message"]


def test_library_lists_page_through_all_entries(alice):
    for n in range(7):
        alice.post("/v1/images", {"name": f"tool-{n}", "uri": f"docker.io/lab/tool:{n}"})
    names, token = [], None
    while True:
        page = alice.get("/v1/images?limit=3" + (f"&nextToken={token}" if token else "")).json_body
        names += [entry["name"] for entry in page["items"]]
        token = page["nextToken"]
        if not token:
            break
    assert names == [f"tool-{n}" for n in range(7)]
