"""DynamoDB access: the only module that reads or writes the tables.

Every status change is a compare-and-set on (status, version); every create is conditional on
the key being new. Lists use Query on an index, never Scan, and hand back an opaque token.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from chalicelib.config import Config
from chalicelib.errors import BadRequest, Conflict, NotFound, StaleWrite
from chalicelib.status import check_transition
from chalicelib.wire.api import HistoryEntry, MigrationView, Role, SubmitRequest
from chalicelib.wire.status import JobStatus

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Rows of one kind share this partition of the table's `byKind` index so that "list them all"
# is a Query. One OpCenter holds thousands of jobs, not millions: one partition carries it.
KIND_JOB = "job"
KIND_IMAGE = "image"
KIND_USER = "user"
# A filtered list reads at most this many index pages per request, then returns what it has
# with a token, so one request never walks a whole table.
_MAX_QUERY_ROUNDS = 20


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

    @classmethod
    def from_request(cls, request: SubmitRequest) -> JobSpec:
        return cls.model_validate(
            request.model_dump(mode="json", exclude={"image", "jobScript", "name"})
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
    instanceId: str | None = None
    # The instance's own command queue, where workflows send the agent its commands.
    commandsQueueUrl: str | None = None
    rc: int | None = None
    # Where the job reaches the API from inside (`float migrate` in its script).
    apiUrl: str | None = None
    # When the agent on `instanceId` last reported in (its heartbeat's own time); the
    # reconciler reads an Executing job whose agent fell silent as lost.
    heartbeatTime: str | None = None
    submitTime: str
    updateTime: str
    history: list[HistoryEntry] = Field(default_factory=list)
    migrations: list[MigrationView] = Field(default_factory=list)


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


class ImageRecord(BaseModel):
    name: str
    uri: str
    owner: str
    private: bool
    # The Secrets Manager id of a private image's credentials; the credentials never live here.
    secretId: str | None = None
    createTime: str
    updateTime: str


class UserRecord(BaseModel):
    username: str
    passwordHash: str
    role: Role
    createTime: str


R = TypeVar("R", bound=BaseModel)
# Job attributes kept as one JSON string each: nested, with fractional numbers DynamoDB's
# number type would need as Decimal, and never used in a key or a filter.
_JSON_FIELDS = ("spec", "migrations")


def _json_field(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, by_alias=True))


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    # Numbers come back as Decimal; the only numbers stored at the top level are whole.
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}


def encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("nextToken is not a token this API handed out", field="nextToken") from None
    if not isinstance(key, dict) or not all(
        isinstance(v, dict) and len(v) == 1 and isinstance(next(iter(v.values())), str)
        for v in key.values()
    ):
        raise BadRequest("nextToken is not a token this API handed out", field="nextToken")
    return key


def _start_key(token: str | None, key_name: str, key_value: str) -> dict[str, Any] | None:
    """The resume key in `token`, if it belongs to the list keyed by key_name = key_value."""
    key = decode_token(token)
    if key is not None and key.get(key_name) != {"S": key_value}:
        raise BadRequest("nextToken does not belong to this list", field="nextToken")
    return key


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Store:
    def __init__(self, client: Any, config: Config) -> None:
        self._db = client
        self._config = config

    # ---- jobs -----------------------------------------------------------------------------

    def create_job(self, job: JobRecord) -> None:
        self._put(self._config.jobs_table, self._job_item(job), "attribute_not_exists(id)",
                  Conflict(f"job {job.id} already exists"))

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
            ":now": {"S": entry.time},
            ":entry": {"L": [{"M": _to_item(entry.model_dump(mode="json", by_alias=True))}]},
        }
        return self._update_job(
            job, {"status": ":target", "updateTime": ":now"}, values, set_fields or {},
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

    def record_heartbeat(self, job_id: str, instance_id: str, time: str) -> bool:
        """Note that the agent on `instance_id` was heard at `time`, if the job still runs
        there and nothing later was noted; True if noted. Not a change of the job: its version
        stays, so a heartbeat never makes a workflow's write stale."""
        try:
            self._db.update_item(
                TableName=self._config.jobs_table, Key={"id": {"S": job_id}},
                UpdateExpression="SET heartbeatTime = :t",
                ConditionExpression="instanceId = :i AND (attribute_not_exists(heartbeatTime)"
                                    " OR heartbeatTime < :t)",
                ExpressionAttributeValues={":t": {"S": time}, ":i": {"S": instance_id}})
        except ClientError as error:
            if _is_conditional_failure(error):
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
            values[f":f{index}"] = _serializer.serialize(
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
            if _is_conditional_failure(error):
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
        """Newest first. Picks the narrowest index; what the index cannot select is filtered."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        filters: list[str] = []
        if owner is not None:
            index, key_name, key_value = "byOwner", "owner", owner
        elif len(statuses) == 1:
            index, key_name, key_value = "byStatus", "status", next(iter(statuses)).value
        else:
            index, key_name, key_value = "byKind", "kind", KIND_JOB
        if statuses and key_name != "status":
            names["#s"] = "status"
            placeholders = []
            for number, status in enumerate(sorted(statuses)):
                values[f":s{number}"] = {"S": status.value}
                placeholders.append(f":s{number}")
            filters.append(f"#s IN ({', '.join(placeholders)})")
        if name is not None:
            names["#n"] = "name"
            values[":name"] = {"S": name}
            filters.append("#n = :name")
        names["#k"] = key_name
        values[":k"] = {"S": key_value}
        query: dict[str, Any] = {
            "TableName": self._config.jobs_table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if filters:
            query["FilterExpression"] = " AND ".join(filters)
        items, last_key = self._query_page(query, limit, _start_key(token, key_name, key_value))
        return [self._job_record(item) for item in items], encode_token(last_key)

    def record_usage(self, usage: UsageRecord) -> bool:
        """Store the record unless this instance's usage is recorded already; True if stored."""
        try:
            self._put(self._config.usage_table, _to_item(usage.model_dump()),
                      "attribute_not_exists(jobId)", Conflict("usage already recorded"))
        except Conflict:
            return False
        return True

    def usage_of(self, job_id: str) -> list[UsageRecord]:
        response = self._db.query(
            TableName=self._config.usage_table, KeyConditionExpression="jobId = :j",
            ExpressionAttributeValues={":j": {"S": job_id}}, ConsistentRead=True)
        return [UsageRecord.model_validate(_from_item(i)) for i in response.get("Items", [])]

    # ---- Application Library ---------------------------------------------------------------

    def create_image(self, image: ImageRecord) -> None:
        self._put(self._config.images_table, _to_item({**image.model_dump(), "kind": KIND_IMAGE}),
                  "attribute_not_exists(#n)",
                  Conflict(f"image {image.name} is already in the Application Library"),
                  names={"#n": "name"})

    def replace_image(self, image: ImageRecord, expected_update_time: str) -> None:
        """Write the new entry only if nobody updated it since it was read."""
        self._put(self._config.images_table, _to_item({**image.model_dump(), "kind": KIND_IMAGE}),
                  "updateTime = :seen", StaleWrite(f"image {image.name} changed meanwhile; try again"),
                  values={":seen": {"S": expected_update_time}})

    def get_image(self, name: str) -> ImageRecord | None:
        return self._get(self._config.images_table, {"name": name}, ImageRecord)

    def delete_image(self, name: str) -> ImageRecord:
        return self._delete(self._config.images_table, {"name": name}, ImageRecord, f"image {name}")

    def list_images(self, limit: int, token: str | None) -> tuple[list[ImageRecord], str | None]:
        return self._list_kind(self._config.images_table, KIND_IMAGE, ImageRecord, limit, token)

    # ---- users -----------------------------------------------------------------------------

    def create_user(self, user: UserRecord) -> None:
        self._put(self._config.users_table, _to_item({**user.model_dump(), "kind": KIND_USER}),
                  "attribute_not_exists(username)", Conflict(f"user {user.username} already exists"))

    def get_user(self, username: str) -> UserRecord | None:
        return self._get(self._config.users_table, {"username": username}, UserRecord)

    def delete_user(self, username: str) -> UserRecord:
        return self._delete(
            self._config.users_table, {"username": username}, UserRecord, f"user {username}"
        )

    def list_users(self, limit: int, token: str | None) -> tuple[list[UserRecord], str | None]:
        return self._list_kind(self._config.users_table, KIND_USER, UserRecord, limit, token)

    # ---- shared ----------------------------------------------------------------------------

    def _put(
        self,
        table: str,
        item: dict[str, Any],
        condition: str,
        refusal: Exception,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        """Write `item` if `condition` holds; else raise `refusal`."""
        request: dict[str, Any] = {"TableName": table, "Item": item, "ConditionExpression": condition}
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._db.put_item(**request)
        except ClientError as error:
            if _is_conditional_failure(error):
                raise refusal from None
            raise

    def _get(self, table: str, key: dict[str, str], model: type[R]) -> R | None:
        item = self._db.get_item(TableName=table, Key=_to_item(key), ConsistentRead=True).get("Item")
        return model.model_validate(_from_item(item)) if item else None

    def _delete(self, table: str, key: dict[str, str], model: type[R], what: str) -> R:
        attribute = next(iter(key))
        try:
            response = self._db.delete_item(
                TableName=table,
                Key=_to_item(key),
                ConditionExpression="attribute_exists(#k)",
                ExpressionAttributeNames={"#k": attribute},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise NotFound(f"{what} does not exist") from None
            raise
        return model.model_validate(_from_item(response["Attributes"]))

    def _list_kind(
        self, table: str, kind: str, model: type[R], limit: int, token: str | None
    ) -> tuple[list[R], str | None]:
        query = {
            "TableName": table,
            "IndexName": "byKind",
            "KeyConditionExpression": "kind = :k",
            "ExpressionAttributeValues": {":k": {"S": kind}},
        }
        items, last_key = self._query_page(query, limit, _start_key(token, "kind", kind))
        return [model.model_validate(_from_item(i)) for i in items], encode_token(last_key)

    def _query_page(
        self, query: dict[str, Any], limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` matching items and the key to resume after the last one read.

        Each round asks for no more items than the page still needs, so the resume key never
        skips a match that was read but not returned.
        """
        items: list[dict[str, Any]] = []
        for _ in range(_MAX_QUERY_ROUNDS):
            request = {**query, "Limit": limit - len(items)}
            if start_key:
                request["ExclusiveStartKey"] = start_key
            try:
                response = self._db.query(**request)
            except ClientError as error:
                if start_key and error.response["Error"]["Code"] == "ValidationException":
                    raise BadRequest(
                        "nextToken does not belong to this list", field="nextToken"
                    ) from None
                raise
            items.extend(response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key or len(items) >= limit:
                break
        return items, start_key

    @staticmethod
    def _job_item(job: JobRecord) -> dict[str, Any]:
        values = job.model_dump(mode="json", by_alias=True, exclude={"history", *_JSON_FIELDS})
        item = _to_item({**values, "kind": KIND_JOB,
                         **{name: _json_field(getattr(job, name)) for name in _JSON_FIELDS}})
        item["history"] = {
            "L": [{"M": _to_item(h.model_dump(mode="json", by_alias=True))} for h in job.history]
        }
        return item

    @staticmethod
    def _job_record(item: dict[str, Any]) -> JobRecord:
        values = _from_item(item)
        for name in _JSON_FIELDS:
            if name in values:
                values[name] = json.loads(values[name])
        return JobRecord.model_validate(values)
