"""The usage table: what each instance cost a job, one record per instance."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from chalicelib.errors import Conflict
from chalicelib.store.tables import Tables, from_item, to_item


class UsageRecord(BaseModel):
    """What one instance cost a job in one calendar month: core-hours on a market, for
    billing and the cost view (chalicelib.metering)."""

    jobId: str
    # launch time, instance id and month: one record per instance and month, so a retried
    # write is a no-op
    recordTime: str
    month: str
    # The part of the instance's run this record covers.
    start: str
    end: str
    owner: str
    instanceId: str
    instanceType: str
    market: str
    vcpus: int
    seconds: int
    coreHours: str
    # USD: the hourly price the instance ran at (the Spot price in force at its launch, or
    # the On-demand price) and the On-demand price of its type, and what this record's
    # seconds cost at each. None where no price could be found.
    pricePerHour: str | None = None
    onDemandPricePerHour: str | None = None
    cost: str | None = None
    onDemandCost: str | None = None


class UsageTable(Tables):
    def record_usage(self, usage: UsageRecord) -> bool:
        """Store the record unless this instance's usage is recorded already; True if stored."""
        try:
            self._put(self._config.usage_table, to_item(usage.model_dump()),
                      "attribute_not_exists(jobId)", Conflict("usage already recorded"))
        except Conflict:
            return False
        return True

    def usage_in_month(self, month: str, owner: str | None = None) -> list[UsageRecord]:
        """Every record of `month` (of one owner's jobs, if given)."""
        query: dict[str, Any] = {
            "TableName": self._config.usage_table, "IndexName": "month-index",
            "KeyConditionExpression": "#m = :m", "ExpressionAttributeNames": {"#m": "month"},
            "ExpressionAttributeValues": {":m": {"S": month}}}
        if owner is not None:
            query["FilterExpression"] = "#o = :o"
            query["ExpressionAttributeNames"]["#o"] = "owner"
            query["ExpressionAttributeValues"][":o"] = {"S": owner}
        records: list[UsageRecord] = []
        while True:
            response = self._db.query(**query)
            records += [UsageRecord.model_validate(from_item(i)) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return records
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def usage_of(self, job_id: str) -> list[UsageRecord]:
        response = self._db.query(
            TableName=self._config.usage_table, KeyConditionExpression="jobId = :j",
            ExpressionAttributeValues={":j": {"S": job_id}}, ConsistentRead=True)
        return [UsageRecord.model_validate(from_item(i)) for i in response.get("Items", [])]
