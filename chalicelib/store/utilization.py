"""The utilization table: each job's series of samples, one item per (time, instance), dropped
by DynamoDB's TTL once older than the retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.store.tables import Tables, encode_token, from_item, start_key
from chalicelib.wire.utilization import UtilizationPoint


def _instant(text: str, field: str = "time") -> datetime:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field} must be an ISO 8601 time such as 2026-01-31T12:00:00Z, "
                         f"not {text!r}", field=field) from None
    if instant.tzinfo is None:
        raise BadRequest(f"{field} must name its time zone (end it with Z)", field=field)
    return instant.astimezone(UTC)


def _sort_time(instant: datetime) -> str:
    # One fixed width, so the sort key orders as time does whatever precision the agent sent.
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sample_key(point: UtilizationPoint) -> str:
    return f"{_sort_time(_instant(point.time))}#{point.instanceId}"


class UtilizationTable(Tables):
    def record_utilization(self, job_id: str, point: UtilizationPoint) -> None:
        """Keep one point of the job's series. The item is keyed by the point's time and
        instance and expires a retention after that time, so a repeated write stores the same
        item again."""
        expires = _instant(point.time) + timedelta(hours=self._config.utilization_retention_hours)
        self._db.put_item(TableName=self._config.utilization_table, Item={
            "jobId": {"S": job_id}, "sampleKey": {"S": sample_key(point)},
            # Fractional figures stay exact as JSON; DynamoDB numbers would need Decimal.
            "point": {"S": point.model_dump_json()},
            "expiresAt": {"N": str(int(expires.timestamp()))}})

    def recent_utilization(self, job_id: str, since: str,
                           now: datetime | None = None) -> list[UtilizationPoint]:
        """The job's points with time ≥ `since`, oldest first, none past its retention."""
        query = self._series_query(job_id, now)
        query["KeyConditionExpression"] += " AND sampleKey >= :since"
        query["ExpressionAttributeValues"][":since"] = {"S": _sort_time(_instant(since, "since"))}
        query["ConsistentRead"] = True
        points: list[UtilizationPoint] = []
        while True:
            response = self._db.query(**query)
            points += [self._point(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return points
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def utilization_page(self, job_id: str, limit: int, token: str | None,
                         now: datetime | None = None
                         ) -> tuple[list[UtilizationPoint], str | None]:
        """Up to `limit` of the job's points, newest first, and the token of the next page."""
        query = {**self._series_query(job_id, now), "ScanIndexForward": False}
        items, last_key = self._query_page(query, limit, start_key(token, "jobId", job_id))
        return [self._point(item) for item in items], encode_token(last_key)

    def _series_query(self, job_id: str, now: datetime | None) -> dict[str, Any]:
        # TTL deletes lag by up to days: an expired point is filtered out until then.
        moment = now or datetime.now(UTC)
        return {"TableName": self._config.utilization_table,
                "KeyConditionExpression": "jobId = :j",
                "FilterExpression": "expiresAt > :now",
                "ExpressionAttributeValues": {":j": {"S": job_id},
                                              ":now": {"N": str(int(moment.timestamp()))}}}

    @staticmethod
    def _point(item: dict[str, Any]) -> UtilizationPoint:
        return UtilizationPoint.model_validate(json.loads(from_item(item)["point"]))
