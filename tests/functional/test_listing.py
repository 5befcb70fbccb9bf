"""Lists: pagination over more jobs than a page, filters, and who sees what."""

from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job


def _all_pages(caller, path):
    ids, token, pages = [], None, 0
    while True:
        separator = "&" if "?" in path else "?"
        response = caller.get(path + (f"{separator}nextToken={token}" if token else ""))
        assert response.status_code == 200, response.body
        pages += 1
        ids += [job["id"] for job in response.json_body["items"]]
        token = response.json_body["nextToken"]
        if not token:
            return ids, pages


def test_pagination_returns_every_job_once_newest_first(alice, runtime, store):
    created = [seed_job(runtime, store, f"job-{n:03d}", JobStatus.SUBMITTED).id for n in range(230)]
    ids, pages = _all_pages(alice, "/v1/jobs?limit=100")
    assert pages == 3
    assert ids == list(reversed(created))


def test_a_status_filter_pages_through_only_matching_jobs(admin, runtime, store):
    wanted = []
    for n in range(120):
        status = [JobStatus.EXECUTING, JobStatus.SUSPENDED, JobStatus.COMPLETED][n % 3]
        job = seed_job(runtime, store, f"j{n:03d}", status, owner="alice")
        if status != JobStatus.COMPLETED:
            wanted.append(job.id)
    ids, _ = _all_pages(admin, "/v1/jobs?limit=7&status=Executing,Suspended")
    assert sorted(ids) == sorted(wanted) and len(ids) == len(set(ids)) == 80
    one, _ = _all_pages(admin, "/v1/jobs?limit=9&status=Completed&user=alice")
    assert len(one) == 40


def test_name_filter_and_bad_filters(alice, runtime, store):
    alice.post("/v1/jobs", {"image": "a/b:1", "jobScript": "true", "name": "align"})
    alice.post("/v1/jobs", {"image": "a/b:1", "jobScript": "true", "name": "sort"})
    named = alice.get("/v1/jobs?name=align").json_body["items"]
    assert [job["name"] for job in named] == ["align"]
    bad_status = alice.get("/v1/jobs?status=Running")
    assert bad_status.status_code == 400 and bad_status.json_body["field"] == "status"
    bad_limit = alice.get("/v1/jobs?limit=0")
    assert bad_limit.status_code == 400 and bad_limit.json_body["field"] == "limit"
    bad_token = alice.get("/v1/jobs?nextToken=garbage!!")
    assert bad_token.status_code == 400 and bad_token.json_body["field"] == "nextToken"


def test_a_token_from_another_list_is_refused(alice, bob, runtime, store):
    for n in range(3):
        seed_job(runtime, store, f"b{n}", JobStatus.SUBMITTED, owner="bob")
    token = bob.get("/v1/jobs?limit=1").json_body["nextToken"]
    response = alice.get(f"/v1/jobs?nextToken={token}")
    assert response.status_code == 400 and response.json_body["field"] == "nextToken"


def test_users_see_and_touch_only_their_own_jobs(alice, bob, admin):
    mine = alice.post("/v1/jobs", {"image": "a/b:1", "jobScript": "true"}).json_body["id"]
    theirs = bob.post("/v1/jobs", {"image": "a/b:1", "jobScript": "true"}).json_body["id"]
    assert [j["id"] for j in alice.get("/v1/jobs").json_body["items"]] == [mine]
    for method, path in [("GET", f"/v1/jobs/{theirs}"), ("POST", f"/v1/jobs/{theirs}/cancel"),
                         ("GET", f"/v1/jobs/{theirs}/logs"), ("GET", f"/v1/jobs/{theirs}/logs/stdout")]:
        assert alice.request(method, path).status_code == 404, path
    assert bob.get(f"/v1/jobs/{theirs}").json_body["status"] == "Submitted"
    refused = alice.get("/v1/jobs?user=bob")
    assert refused.status_code == 403
    everyone = {j["id"] for j in admin.get("/v1/jobs").json_body["items"]}
    assert everyone == {mine, theirs}
    assert [j["id"] for j in admin.get("/v1/jobs?user=bob").json_body["items"]] == [theirs]
    assert admin.post(f"/v1/jobs/{theirs}/cancel").json_body["status"] == "Cancelled"
