"""Input no client should be able to use to break the OpCenter: each answers 400 naming the
field, stores nothing, and leaves every listing working for everyone."""

from __future__ import annotations

import base64
import json

import pytest

from tests.functional.test_jobs_api import FULL_SUBMIT


def _refused(response, field: str, words: str = "") -> None:
    assert response.status_code == 400, response.body
    named = response.json_body["field"] or ""
    # The field itself or a part of it (mem.max for mem).
    assert named == field or named.startswith(f"{field}."), response.json_body
    assert words in response.json_body["message"], response.json_body


def _listings_work(*callers) -> None:
    for caller in callers:
        listed = caller.get("/v1/jobs")
        assert listed.status_code == 200, listed.body


@pytest.mark.parametrize("raw", [
    json.dumps({**FULL_SUBMIT, "mem": "2:inf"}),
    json.dumps({**FULL_SUBMIT, "mem": "nan"}),
    json.dumps({**FULL_SUBMIT, "mem": "inf:inf"}),
    json.dumps(FULL_SUBMIT)[:-1] + ', "mem": {"min": 2, "max": 1e309}}',
    json.dumps({**FULL_SUBMIT, "mem": "2:99999999"}),
])
def test_an_infinite_or_absurd_memory_size_is_refused_and_listings_still_answer(alice, admin, raw):
    _refused(alice.post("/v1/jobs", raw), "mem")
    _listings_work(alice, admin)
    assert alice.get("/v1/jobs").json_body["items"] == []


@pytest.mark.parametrize("change, field", [
    ({"cpu": "2:100000"}, "cpu"),
    ({"timeLimit": "99999999d"}, "timeLimit"),
    ({"vmPolicy": "[retryLimit=\u00b2]"}, "vmPolicy"),
    ({"migratePolicy": "[mem.step=1e309]"}, "migratePolicy"),
])
def test_numbers_out_of_any_sane_range_are_refused(alice, change, field):
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, **change}), field)


def _spoil_stored_memory(runtime, job_id: str) -> None:
    """What an older release wrote for `2:inf`: a maximum DynamoDB and JSON cannot hold."""
    table = runtime.config.jobs_table
    item = runtime.dynamodb.get_item(TableName=table, Key={"id": {"S": job_id}})["Item"]
    spec = json.loads(item["spec"]["S"])
    spec["mem"]["max"] = None
    runtime.dynamodb.update_item(
        TableName=table, Key={"id": {"S": job_id}}, UpdateExpression="SET spec = :s",
        ExpressionAttributeValues={":s": {"S": json.dumps(spec)}})


def test_a_stored_job_that_cannot_be_read_whole_still_lists_and_shows(alice, admin, runtime):
    spoiled = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    sound = alice.post("/v1/jobs", {**FULL_SUBMIT, "name": "sound"}).json_body["id"]
    _spoil_stored_memory(runtime, spoiled)
    for caller in (alice, admin):
        listed = caller.get("/v1/jobs")
        assert listed.status_code == 200, listed.body
        by_id = {job["id"]: job for job in listed.json_body["items"]}
        assert set(by_id) == {spoiled, sound}
        assert by_id[spoiled]["unreadable"] == ["mem"] and by_id[spoiled]["mem"] is None
        assert by_id[spoiled]["cpu"] == {"min": 2, "max": 8}
        assert by_id[sound]["unreadable"] == [] and by_id[sound]["mem"] == {"min": 4, "max": 16}
    shown = alice.get(f"/v1/jobs/{spoiled}")
    assert shown.status_code == 200, shown.body
    assert shown.json_body["unreadable"] == ["mem"] and shown.json_body["name"] == "answer"


@pytest.mark.parametrize("change, field", [
    ({"customTags": {"bad\u0000key": "x"}}, "customTags"),
    ({"customTags": {"project": "gen\u0000ome"}}, "customTags.project"),
    ({"env": {"A": "before\u0000after"}}, "env.A"),
    ({"env": {"A\u0000": "x"}}, "env"),
    ({"name": "an\u0000swer"}, "name"),
    ({"jobScript": "#!/bin/sh\necho \u0000\n"}, "jobScript"),
])
def test_a_nul_anywhere_in_a_submit_is_refused_naming_where(alice, change, field):
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, **change}), field, "NUL")
    assert alice.get("/v1/jobs").json_body["items"] == []


@pytest.mark.parametrize("change, field", [
    ({"customTags": {"project": "line\u0007bell"}}, "customTags"),
    ({"customTags": {"new\nline": "x"}}, "customTags"),
    ({"name": "two\nlines"}, "name"),
    ({"image": "busybox; rm -rf /"}, "image"),
])
def test_control_characters_are_refused_where_ec2_or_a_table_would_choke(alice, change, field):
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, **change}), field)


def test_control_characters_in_a_reason_or_added_tag_are_refused(alice):
    job = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    _refused(alice.post(f"/v1/jobs/{job}/cancel", {"reason": "bye\u001b[2J"}), "reason")
    _refused(alice.patch(f"/v1/jobs/{job}", {"addCustomTags": {"k": "v\u0000"}}),
             "addCustomTags.k", "NUL")
    assert alice.get(f"/v1/jobs/{job}").json_body["status"] == "Submitted"


def test_an_oversized_environment_is_refused_naming_env(alice):
    huge = {f"V{n}": "x" * 100 for n in range(100_000)}
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, "env": huge}), "env", "at most 1000")
    long_value = {"A": "x" * (33 * 1024)}
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, "env": long_value}), "env", "A is longer")
    # Each part within bounds, the whole too large for the job's stored item.
    many = {f"V{n}": "x" * 200 for n in range(900)}
    _refused(alice.post("/v1/jobs", {**FULL_SUBMIT, "env": many}), "env", "of them env")
    assert alice.get("/v1/jobs").json_body["items"] == []


def _paged_routes(alice) -> list[str]:
    job = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    return ["/v1/jobs", "/v1/jobs?status=Submitted", "/v1/jobs?status=Submitted,Executing",
            "/v1/jobs?name=answer", "/v1/images", "/v1/secrets", "/v1/storage",
            f"/v1/jobs/{job}/utilization"]


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661", "\uff11", "1e2", "-1", "0", "100001", " 5",
                                   "9" * 5000])
def test_a_page_size_that_is_not_plain_digits_is_refused_on_every_listing(alice, admin, limit):
    for route in [*_paged_routes(alice), "/v1/users"]:
        caller = admin if route == "/v1/users" else alice
        separator = "&" if "?" in route else "?"
        response = caller.get(f"{route}{separator}limit={limit}")
        _refused(response, "limit")


def _token(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_TOKENS = [
    "not-a-token", "%00", "\u00b2", _token([1, 2]), _token("x"), _token({}),
    _token({"id": {"S": "x"}}), _token({"id": {"N": "x"}}), _token({"id": {"B": "x"}}),
    _token({"kind": {"S": "job"}, "submitTime": {"S": "x"}}),
    _token({"kind": {"S": "job"}, "id": {"S": "a"}, "submitTime": {"S": "b"}, "x": {"S": "y"}}),
    _token({"username": {"S": "alice"}, "kind": {"S": "user"}}),
    _token({"id": {"S": "a" * 5000}}),
]


@pytest.mark.parametrize("token", FORGED_TOKENS)
def test_a_forged_next_token_is_refused_on_every_listing(alice, admin, token):
    for route in [*_paged_routes(alice), "/v1/users"]:
        caller = admin if route == "/v1/users" else alice
        separator = "&" if "?" in route else "?"
        _refused(caller.get(f"{route}{separator}nextToken={token}"), "nextToken")


def test_a_next_token_works_only_on_the_list_and_for_the_caller_it_came_from(alice, bob, runtime):
    for n in range(3):
        assert alice.post("/v1/jobs", {**FULL_SUBMIT, "name": f"job-{n}"}).status_code == 201
    first = alice.get("/v1/jobs?limit=2").json_body
    token = first["nextToken"]
    rest = alice.get(f"/v1/jobs?limit=2&nextToken={token}")
    assert rest.status_code == 200, rest.body
    names = [job["name"] for job in first["items"] + rest.json_body["items"]]
    assert sorted(names) == ["job-0", "job-1", "job-2"]
    # The same resume point, asked of another list or by another user.
    _refused(alice.get(f"/v1/jobs?status=Submitted&nextToken={token}"), "nextToken")
    _refused(alice.get(f"/v1/images?nextToken={token}"), "nextToken")
    _refused(bob.get(f"/v1/jobs?limit=2&nextToken={token}"), "nextToken")
    # One character of its resume point changed.
    flipped = ("B" if token[0] == "A" else "A") + token[1:]
    _refused(alice.get(f"/v1/jobs?limit=2&nextToken={flipped}"), "nextToken")


@pytest.mark.parametrize("query", ["lines=\u00b2", "offset=\u0661", "lines=1e3", "offset=-5"])
def test_log_positions_that_are_not_plain_digits_are_refused(alice, query):
    job = alice.post("/v1/jobs", FULL_SUBMIT).json_body["id"]
    response = alice.get(f"/v1/jobs/{job}/logs/stdout?{query}")
    _refused(response, query.split("=")[0])
