"""The jobs table: each job one item; every status change a compare-and-set on (status,
version), so of two writers holding the same version exactly one wins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from chalicelib.errors import Conflict, NotFound, StaleWrite
from chalicelib.status import check_transition
from chalicelib.store.listing import (
    KIND_JOB,
    listing_keys,
    listing_plan,
    merge_newest_first,
    place_after,
    places_in,
)
from chalicelib.store.tables import (
    Tables,
    encode_token,
    from_item,
    is_conditional_failure,
    serialize,
    to_item,
)
from chalicelib.wire.api import HistoryEntry, MigrationView, SubmitRequest
from chalicelib.wire.checkpoints import CheckpointSummary
from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import UtilizationPoint, UtilizationSummary


class JobSpec(BaseModel):
    """What the user asked for, kept with the job as one JSON attribute."""

    cpu: Any
    mem: Any
    instType: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    customTags: dict[str, str] = Field(default_factory=dict)
    dataVolumes: list[Any] = Field(default_factory=list)
    vmPolicy: Any
    migratePolicy: Any = None
    disableRerun: bool = False
    timeLimit: int | None = None
    checkpointInterval: int | None = None
    gpu: int | None = None
    zone: str | None = None
    securityGroups: list[str] = Field(default_factory=list)
    rootVolSize: int | None = None
    imageVolSize: int | None = None
    disableMigrate: bool = False
    privileged: bool = False
    withRoot: bool = False
    containerOpts: list[str] = Field(default_factory=list)
    dirMaps: list[Any] = Field(default_factory=list)
    publish: list[str] = Field(default_factory=list)

    @classmethod
    def from_request(cls, request: SubmitRequest) -> JobSpec:
        return cls.model_validate(
            request.model_dump(mode="json", exclude={"image", "jobScript", "name", "hostInit",
                                                     "hostTerminate"})
        )


class JobRecord(BaseModel):
    id: str
    owner: str
    status: JobStatus
    version: int
    name: str | None = None
    image: str
    imageUri: str
    scriptKey: str
    spec: JobSpec
    # The job's host scripts in S3 (wire.hostscripts has the keys) and their sizes; None: none.
    hostInitKey: str | None = None
    hostInitSize: int | None = None
    hostTerminateKey: str | None = None
    hostTerminateSize: int | None = None
    instanceId: str | None = None
    # The instance's own command queue, where workflows send the agent its commands.
    commandsQueueUrl: str | None = None
    # The type and availability zone EC2 chose for `instanceId` among those its launch allowed.
    instanceType: str | None = None
    instanceZone: str | None = None
    rc: int | None = None
    # Where the job reaches the API from inside (`float migrate` in its script).
    apiUrl: str | None = None
    # The Secrets Manager id of the S3 keys of the job's volumes, when any has its own.
    volumeKeysSecretId: str | None = None
    # When the agent on `instanceId` last reported in (its heartbeat's own time); the
    # reconciler reads an Executing job whose agent fell silent as lost.
    heartbeatTime: str | None = None
    # The address of the job's instance, as its agent reports it in heartbeats, and the
    # instance it is of: after a move it names the old one until the new one reports.
    address: str | None = None
    addressOf: str | None = None
    # WaveRider's latest move of the job: when it began, and which way cpu and mem went
    # ({"time", "cpu": "up"|"down", "mem": ...}); its cool-down reads it.
    lastAutoMove: dict[str, str] | None = None
    # The latest utilization sample (wire.utilization.UtilizationSummary's fields), with the
    # highest working set of any sample of the job as its memoryPeakBytes.
    utilization: dict[str, Any] | None = None
    # The newest checkpoint its agents reported committed (wire.checkpoints.CheckpointSummary).
    lastCheckpoint: dict[str, Any] | None = None
    submitTime: str
    updateTime: str
    history: list[HistoryEntry] = Field(default_factory=list)
    migrations: list[MigrationView] = Field(default_factory=list)



# Job attributes kept as one JSON string each: nested, with fractional numbers DynamoDB's
# number type would need as Decimal, and never used in a key or a filter.
_JSON_FIELDS = ("spec", "migrations", "utilization", "lastCheckpoint")


def _json_field(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, by_alias=True))



class JobTable(Tables):
    def create_job(self, job: JobRecord) -> None:
        self._put(self._config.jobs_table, self._job_item(job), "attribute_not_exists(id)",
                  Conflict(f"job {job.id} already exists"))

    def require_job(self, job_id: str) -> JobRecord:
        """The job; NotFound when there is none."""
        job = self.get_job(job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        return job

    def get_job(self, job_id: str) -> JobRecord | None:
        item = self._db.get_item(
            TableName=self._config.jobs_table, Key={"id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return self._job_record(item) if item else None

    def transition_job(
        self,
        job: JobRecord,
        target: JobStatus,
        entry: HistoryEntry,
        set_fields: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Move `job` to `target` if the transition table allows it (else IllegalTransition)
        and nobody changed the job since it was read (else StaleWrite).

        The status, version bump and history entry land in one conditional write, so of two
        writers holding the same version exactly one wins and nothing of the winner is lost.
        """
        check_transition(job.id, job.status, target)
        values = {
            ":expected": {"S": job.status.value},
            ":target": {"S": target.value},
            ":ownerStatus": {"S": listing_keys(job.owner, target, None)["ownerStatus"]},
            ":now": {"S": entry.time},
            ":entry": {"L": [{"M": to_item(entry.model_dump(mode="json", by_alias=True))}]},
        }
        return self._update_job(
            job, {"status": ":target", "ownerStatus": ":ownerStatus", "updateTime": ":now"},
            values, set_fields or {},
            extra_sets=["#history = list_append(#history, :entry)"],
            condition="#status = :expected",
            refusal=StaleWrite(f"job {job.id} changed while it was being moved to "
                               f"{target.value}; read it again and retry"))

    def job_on_instance(self, instance_id: str) -> JobRecord | None:
        """The job whose current instance is `instance_id`, if any."""
        response = self._db.query(
            TableName=self._config.jobs_table, IndexName="byInstance",
            KeyConditionExpression="instanceId = :i",
            ExpressionAttributeValues={":i": {"S": instance_id}})
        items = response.get("Items", [])
        # The index is eventually consistent: confirm against the item itself.
        for item in items:
            job = self.get_job(item["id"]["S"])
            if job is not None and job.instanceId == instance_id:
                return job
        return None

    def record_heartbeat(self, job_id: str, instance_id: str, time: str,
                         address: str | None = None,
                         utilization: UtilizationPoint | None = None,
                         peak_before: int = 0) -> bool:
        """Note that the agent on `instance_id` was heard at `time` (and the instance's
        `address`, when it said; its `utilization` sample, kept as the job's latest with the
        peak raised from `peak_before`, the one on the job as the caller read it), if the job
        still runs there and nothing later was noted; True if noted. Not a change of the job:
        its version stays, so a heartbeat never makes a workflow's write stale."""
        values = {":t": {"S": time}, ":i": {"S": instance_id}}
        update = "SET heartbeatTime = :t"
        if address is not None:
            values[":a"] = {"S": address}
            update += ", address = :a, addressOf = :i"
        if utilization is not None:
            summary = UtilizationSummary(
                **utilization.model_dump(exclude={"memoryPeakBytes"}),
                memoryRatio=round(utilization.memoryRatio, 2),
                memoryPeakBytes=max(peak_before, utilization.memoryPeakBytes))
            values[":u"] = {"S": summary.model_dump_json()}
            update += ", utilization = :u"
        try:
            self._db.update_item(
                TableName=self._config.jobs_table, Key={"id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression="instanceId = :i AND (attribute_not_exists(heartbeatTime)"
                                    " OR heartbeatTime < :t)",
                ExpressionAttributeValues=values)
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def record_checkpoint(self, job_id: str, instance_id: str,
                          checkpoint: CheckpointSummary) -> bool:
        """Note the job's newest committed checkpoint, reported by the agent on `instance_id`,
        if the job still runs there and no later one was noted; True if noted. Like a
        heartbeat, not a change of the job: its version stays."""
        try:
            self._db.update_item(
                TableName=self._config.jobs_table, Key={"id": {"S": job_id}},
                UpdateExpression="SET lastCheckpoint = :c, lastCheckpointSeq = :s",
                ConditionExpression="instanceId = :i AND (attribute_not_exists(lastCheckpointSeq)"
                                    " OR lastCheckpointSeq < :s)",
                ExpressionAttributeValues={":c": {"S": checkpoint.model_dump_json()},
                                           ":s": {"N": str(checkpoint.seq)},
                                           ":i": {"S": instance_id}})
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def jobs_with_status(self, status: JobStatus) -> Iterator[JobRecord]:
        """Every job in `status`, oldest first, read from the status index page by page."""
        query: dict[str, Any] = {
            "TableName": self._config.jobs_table, "IndexName": "byStatus",
            "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": status.value}}}
        while True:
            response = self._db.query(**query)
            for item in response.get("Items", []):
                yield self._job_record(item)
            if "LastEvaluatedKey" not in response:
                return
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def modify_job(self, job: JobRecord, entry: HistoryEntry, fields: dict[str, Any]) -> JobRecord:
        """Set fields of a job and note why in its history, its status kept, if nobody changed
        the job since it was read (else StaleWrite)."""
        values = {":entry": {"L": [{"M": to_item(entry.model_dump(mode="json", by_alias=True))}]},
                  ":now": {"S": entry.time}}
        return self._update_job(
            job, {"updateTime": ":now"}, values, fields,
            extra_sets=["#history = list_append(#history, :entry)"],
            refusal=StaleWrite(f"job {job.id} changed while it was being modified"))

    def record_fields(self, job: JobRecord, fields: dict[str, Any]) -> JobRecord:
        """Set fields of a job (not its status) if nobody changed it since it was read."""
        return self._update_job(job, {}, {}, fields, refusal=StaleWrite(
            f"job {job.id} changed while its fields were being set"))

    def _update_job(self, job: JobRecord, named: dict[str, str], values: dict[str, Any],
                    fields: dict[str, Any], refusal: StaleWrite, extra_sets: tuple[str, ...]
                    | list[str] = (), condition: str | None = None) -> JobRecord:
        """One conditional UpdateItem: bump the version, set `named` attributes to the given
        placeholders and `fields` to their values, only if the version is the one read."""
        names = {"#version": "version", "#history": "history", "#status": "status"}
        values = {**values, ":version": {"N": str(job.version)},
                  ":next": {"N": str(job.version + 1)}}
        sets = ["#version = :next", *(f"#{name} = {placeholder}" for name, placeholder
                                      in named.items()), *extra_sets]
        names.update({f"#{name}": name for name in named})
        removes = []
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            if value is None:
                # Removed, not set to NULL: an index key (instanceId) must be absent or a string.
                removes.append(f"#f{index}")
                continue
            values[f":f{index}"] = serialize(
                _json_field(value) if name in _JSON_FIELDS else value)
            sets.append(f"#f{index} = :f{index}")
        guard = "#version = :version" + (f" AND {condition}" if condition else "")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        used = update + guard
        try:
            response = self._db.update_item(
                TableName=self._config.jobs_table, Key={"id": {"S": job.id}},
                UpdateExpression=update, ConditionExpression=guard,
                # DynamoDB refuses names an expression does not use.
                ExpressionAttributeNames={k: v for k, v in names.items() if k in used},
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except ClientError as error:
            if is_conditional_failure(error):
                raise refusal from None
            raise
        return self._job_record(response["Attributes"])

    def list_jobs(
        self,
        *,
        owner: str | None,
        statuses: frozenset[JobStatus],
        name: str | None,
        limit: int,
        token: str | None,
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first, read from the index whose partitions hold exactly the jobs asked for:
        one Query per partition (one per status asked for), merged. Only a name with statuses
        filters, and then only that name's own jobs."""
        index, key_name, partitions, filtered = listing_plan(owner, statuses, name)
        query: dict[str, Any] = {
            "TableName": self._config.jobs_table, "IndexName": index,
            "KeyConditionExpression": "#k = :k", "ExpressionAttributeNames": {"#k": key_name},
            "ExpressionAttributeValues": {}, "ScanIndexForward": False,
        }
        if filtered:
            query["ExpressionAttributeNames"]["#s"] = "status"
            placeholders = []
            for number, status in enumerate(sorted(filtered)):
                query["ExpressionAttributeValues"][f":s{number}"] = {"S": status.value}
                placeholders.append(f":s{number}")
            query["FilterExpression"] = f"#s IN ({', '.join(placeholders)})"
        places = places_in(token, partitions)
        streams: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]] = {}
        for partition, place in places.items():
            request = {**query, "ExpressionAttributeValues": {
                **query["ExpressionAttributeValues"], ":k": {"S": partition}}}
            start = {"id": {"S": place[1]}, key_name: {"S": partition},
                     "submitTime": {"S": place[0]}} if place else None
            streams[partition] = self._query_page(request, limit, start)
        page, taken = merge_newest_first(streams, limit)
        following: dict[str, list[str]] = {}
        for partition, (items, last_key) in streams.items():
            used, position = taken[partition], str(partitions.index(partition))
            if used < len(items):
                following[position] = place_after(items[used - 1]) if used else places[partition]
            elif last_key:
                following[position] = place_after(last_key)
        return [self._job_record(item) for item in page], encode_token(following)

    @staticmethod
    def _job_item(job: JobRecord) -> dict[str, Any]:
        values = job.model_dump(mode="json", by_alias=True, exclude={"history", *_JSON_FIELDS})
        item = to_item({**values, "kind": KIND_JOB,
                        **listing_keys(job.owner, job.status, job.name),
                        **{name: _json_field(getattr(job, name)) for name in _JSON_FIELDS}})
        item["history"] = {
            "L": [{"M": to_item(h.model_dump(mode="json", by_alias=True))} for h in job.history]
        }
        return item

    @staticmethod
    def _job_record(item: dict[str, Any]) -> JobRecord:
        values = from_item(item)
        for name in _JSON_FIELDS:
            if name in values:
                values[name] = json.loads(values[name])
        return JobRecord.model_validate(values)
