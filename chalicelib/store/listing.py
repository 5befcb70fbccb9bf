"""How the jobs table is listed: which index and partitions hold the jobs a listing asks for,
the keys a job is filed under in them, and the merge of several partitions newest first."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.store.tables import decode_keys
from chalicelib.wire.status import JobStatus

# Every job is in this partition of the table's `byKind` index, so that "list them all" is a
# Query that reads no more than the page it returns.
KIND_JOB = "job"


def listing_keys(owner: str, status: JobStatus, name: str | None) -> dict[str, str]:
    """The job's keys in the listing indexes that combine two fields. A user name never holds
    a "/", so the owner is whatever comes before the first one."""
    keys = {"ownerStatus": f"{owner}/{status.value}"}
    if name is not None:
        keys["ownerName"] = f"{owner}/{name}"
    return keys


def listing_plan(owner: str | None, statuses: frozenset[JobStatus], name: str | None
                 ) -> tuple[str, str, list[str], frozenset[JobStatus]]:
    """The index a listing reads, its key attribute, the partitions that hold the jobs asked
    for, and the statuses left to a filter (only within one name's jobs)."""
    ordered = sorted(status.value for status in statuses)
    if name is not None:
        if owner is not None:
            return "byOwnerName", "ownerName", [f"{owner}/{name}"], statuses
        return "byName", "name", [name], statuses
    if owner is not None and statuses:
        return "byOwnerStatus", "ownerStatus", [f"{owner}/{s}" for s in ordered], frozenset()
    if owner is not None:
        return "byOwner", "owner", [owner], frozenset()
    if statuses:
        return "byStatus", "status", ordered, frozenset()
    return "byKind", "kind", [KIND_JOB], frozenset()


def places_in(token: str | None, partitions: list[str]) -> dict[str, list[str]]:
    """Where each partition's Query resumes: after the job [submitTime, id], or at its start
    ([]). A partition that is absent was read to its end on an earlier page. The token names
    each partition by its place in `partitions`, which the same filters always give."""
    if token is None:
        return {partition: [] for partition in partitions}
    places = {}
    for number, place in (decode_keys(token) or {}).items():
        if not number.isascii() or not number.isdigit() or int(number) >= len(partitions) \
                or not isinstance(place, list) or len(place) not in (0, 2) \
                or not all(isinstance(part, str) for part in place):
            raise BadRequest("nextToken does not belong to this list", field="nextToken")
        places[partitions[int(number)]] = place
    return places


def place_after(item_or_key: dict[str, Any]) -> list[str]:
    """The place just after a job in an index of the jobs table, as a token keeps it: one
    partition's key is the same for all, and DynamoDB's resume key is the rest."""
    return [item_or_key["submitTime"]["S"], item_or_key["id"]["S"]]


def merge_newest_first(streams: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]],
                        limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Up to `limit` items of the streams (each newest first, as its Query read it), newest
    first, and how many of each were taken. Each stream keeps its own order, so the key of
    its last taken item is exactly where it resumes; a stream that has more than was read
    stops the merge when its read items run out, as its next one may be newer than any other."""
    taken = dict.fromkeys(streams, 0)
    page: list[dict[str, Any]] = []
    while len(page) < limit:
        heads = []
        for partition, (items, last_key) in streams.items():
            if taken[partition] < len(items):
                heads.append(partition)
            elif last_key:
                return page, taken
        if not heads:
            break
        newest = max(heads, key=lambda p: streams[p][0][taken[p]]["submitTime"]["S"])
        page.append(streams[newest][0][taken[newest]])
        taken[newest] += 1
    return page, taken
