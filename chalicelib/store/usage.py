"""The usage table: what each instance cost a job, one record per instance."""

from __future__ import annotations

from pydantic import BaseModel

from chalicelib.errors import Conflict
from chalicelib.store.tables import Tables, from_item, to_item


class UsageRecord(BaseModel):
    """What one instance cost a job: core-hours on a market, for billing and the cost view."""

    jobId: str
    # launch time and instance id: one record per instance, so a retried write is a no-op
    recordTime: str
    owner: str
    instanceId: str
    instanceType: str
    market: str
    vcpus: int
    seconds: int
    coreHours: str




class UsageTable(Tables):
    def record_usage(self, usage: UsageRecord) -> bool:
        """Store the record unless this instance's usage is recorded already; True if stored."""
        try:
            self._put(self._config.usage_table, to_item(usage.model_dump()),
                      "attribute_not_exists(jobId)", Conflict("usage already recorded"))
        except Conflict:
            return False
        return True

    def usage_of(self, job_id: str) -> list[UsageRecord]:
        response = self._db.query(
            TableName=self._config.usage_table, KeyConditionExpression="jobId = :j",
            ExpressionAttributeValues={":j": {"S": job_id}}, ConsistentRead=True)
        return [UsageRecord.model_validate(from_item(i)) for i in response.get("Items", [])]
