"""What every table of the store shares: the item codec, the tokens lists hand out, and
conditional writes and paged queries."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from chalicelib.config import Config
from chalicelib.errors import BadRequest, NotFound

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# A filtered list reads at most this many index pages per request, then returns what it has
# with a token, so one request never walks a whole table.
_MAX_QUERY_ROUNDS = 20

R = TypeVar("R", bound=BaseModel)


def serialize(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    # Numbers come back as Decimal; the only numbers stored at the top level are whole.
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}


def encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> dict[str, Any] | None:
    """The key in a token encode_token made; BadRequest for anything else."""
    key = decode_keys(token)
    if key is not None and not is_key(key):
        raise BadRequest("nextToken is not a token this API handed out", field="nextToken")
    return key


def decode_keys(token: str | None) -> dict[str, Any] | None:
    """The JSON object in a token encode_token made, whatever it holds."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("nextToken is not a token this API handed out", field="nextToken") from None
    if not isinstance(value, dict):
        raise BadRequest("nextToken is not a token this API handed out", field="nextToken")
    return value


def is_key(value: Any) -> bool:
    """Whether `value` has the shape of a key DynamoDB hands back: string attributes only."""
    return isinstance(value, dict) and all(
        isinstance(v, dict) and len(v) == 1 and isinstance(next(iter(v.values())), str)
        for v in value.values())


def start_key(token: str | None, key_name: str, key_value: str) -> dict[str, Any] | None:
    """The resume key in `token`, if it belongs to the list keyed by key_name = key_value."""
    key = decode_token(token)
    if key is not None and key.get(key_name) != {"S": key_value}:
        raise BadRequest("nextToken does not belong to this list", field="nextToken")
    return key


def is_conditional_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"



class Tables:
    """The client and the table names; what each table's own class builds on."""

    def __init__(self, client: Any, config: Config) -> None:
        self._db = client
        self._config = config

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
            if is_conditional_failure(error):
                raise refusal from None
            raise

    def _get(self, table: str, key: dict[str, str], model: type[R]) -> R | None:
        item = self._db.get_item(TableName=table, Key=to_item(key), ConsistentRead=True).get("Item")
        return model.model_validate(from_item(item)) if item else None

    def _delete(self, table: str, key: dict[str, str], model: type[R], what: str) -> R:
        attribute = next(iter(key))
        try:
            response = self._db.delete_item(
                TableName=table,
                Key=to_item(key),
                ConditionExpression="attribute_exists(#k)",
                ExpressionAttributeNames={"#k": attribute},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                raise NotFound(f"{what} does not exist") from None
            raise
        return model.model_validate(from_item(response["Attributes"]))

    def _list_kind(
        self, table: str, kind: str, model: type[R], limit: int, token: str | None
    ) -> tuple[list[R], str | None]:
        query = {
            "TableName": table,
            "IndexName": "byKind",
            "KeyConditionExpression": "kind = :k",
            "ExpressionAttributeValues": {":k": {"S": kind}},
        }
        items, last_key = self._query_page(query, limit, start_key(token, "kind", kind))
        return [model.model_validate(from_item(i)) for i in items], encode_token(last_key)

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
