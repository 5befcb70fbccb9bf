"""Lists: pagination over more jobs than a page, filters, and who sees what."""

from typing import Any

from chalicelib.store import Store
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import entry, seed_job


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
    assert ids == list(reversed(wanted))
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


def test_every_combination_of_filters_lists_exactly_its_jobs_newest_first(admin, runtime, store):
    statuses = [JobStatus.EXECUTING, JobStatus.SUSPENDED, JobStatus.COMPLETED, JobStatus.FAIL_TO_COMPLETE]
    jobs = [seed_job(runtime, store, f"c{n:03d}", statuses[n % 4], owner=("alice", "bob")[n % 3 % 2],
                     name=("align", "sort", None)[n % 5 % 3]) for n in range(150)]
    for query, wanted in (
            ("status=Executing,FailToComplete",
             lambda j: j.status in {JobStatus.EXECUTING, JobStatus.FAIL_TO_COMPLETE}),
            ("user=bob&status=Suspended,Completed,FailToComplete",
             lambda j: j.owner == "bob" and j.status != JobStatus.EXECUTING),
            ("name=align", lambda j: j.name == "align"),
            ("name=sort&user=alice", lambda j: j.name == "sort" and j.owner == "alice"),
            ("name=align&status=Completed,Executing",
             lambda j: j.name == "align" and j.status in {JobStatus.COMPLETED, JobStatus.EXECUTING}),
            ("user=alice", lambda j: j.owner == "alice")):
        ids, _ = _all_pages(admin, f"/v1/jobs?limit=6&{query}")
        assert ids == [j.id for j in reversed(jobs) if wanted(j)], query


def test_a_listing_of_every_status_pages_through_every_job_in_order(alice, runtime, store):
    statuses = list(JobStatus)
    jobs = [seed_job(runtime, store, f"every-{n:02d}-with-a-long-identifier-of-forty-chars",
                     statuses[n % len(statuses)]).id for n in range(3 * len(statuses))]
    every = ",".join(status.value for status in statuses)
    ids, pages = _all_pages(alice, f"/v1/jobs?limit=2&status={every}")
    assert ids == list(reversed(jobs)) and pages >= len(jobs) // 2


def test_a_job_lists_under_its_new_status_once_it_moves(alice, runtime, store):
    job = seed_job(runtime, store, "mover", JobStatus.EXECUTING)
    store.transition_job(job, JobStatus.COMPLETED,
                         entry(runtime, job.status, JobStatus.COMPLETED, "done"))
    assert alice.get("/v1/jobs?status=Executing").json_body["items"] == []
    assert [j["id"] for j in alice.get("/v1/jobs?status=Completed,FailToComplete").json_body["items"]] \
        == ["mover"]


class _Counting:
    """The DynamoDB client, counting the items each Query reads before any filter."""

    def __init__(self, client: Any) -> None:
        self._client, self.read = client, 0

    def query(self, **request: Any) -> Any:
        answer = self._client.query(**request)
        self.read += answer["ScannedCount"]
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_page_reads_about_what_it_returns_however_many_other_jobs_there_are(runtime, store):
    for n in range(12):
        seed_job(runtime, store, f"want{n:02d}", (JobStatus.EXECUTING, JobStatus.SUSPENDED)[n % 2],
                 owner="alice", name="wanted")
    # Newer than every job asked for, so a filter would read them all first.
    for n in range(300):
        seed_job(runtime, store, f"other{n:03d}", JobStatus.COMPLETED,
                 owner=("alice", "bob")[n % 2], name="other")
    counting = _Counting(runtime.dynamodb)
    reader = Store(counting, runtime.config)
    for filters in ({"owner": None, "statuses": frozenset({JobStatus.EXECUTING,
                                                           JobStatus.SUSPENDED}), "name": None},
                    {"owner": "alice", "statuses": frozenset({JobStatus.SUSPENDED}), "name": None},
                    {"owner": "alice", "statuses": frozenset(), "name": "wanted"},
                    {"owner": None, "statuses": frozenset(), "name": "wanted"}):
        counting.read = 0
        page, _ = reader.list_jobs(limit=5, token=None, **filters)
        assert len(page) == 5
        # At most one page's worth from each partition asked for, none of the 300 others.
        assert counting.read <= 5 * len(filters["statuses"] or [None]), filters
