"""The local DynamoDB's index Queries read one partition, and answer what moto answers reading
the whole table: every page, start key and count, through puts, updates, deletes and batches."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from localmode.atomic import atomic_requests

PARTITIONS = ["a", "b", "c"]


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="t",
                              aws_secret_access_key="t")
        client.create_table(
            TableName="things", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                                  (("id", "S"), ("group", "S"), ("at", "S"), ("rank", "N"))],
            GlobalSecondaryIndexes=[
                {"IndexName": "byGroup", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "group", "KeyType": "HASH"},
                               {"AttributeName": "at", "KeyType": "RANGE"}]},
                {"IndexName": "byRank", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "rank", "KeyType": "HASH"}]}])
        yield client


def _pages(client: Any, **query: Any) -> list[dict[str, Any]]:
    pages, start = [], None
    while True:
        answer = client.query(**query, **({"ExclusiveStartKey": start} if start else {}))
        pages.append({k: answer.get(k) for k in ("Items", "Count", "ScannedCount",
                                                 "LastEvaluatedKey")})
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


def _as_moto_alone(call: Callable[[], Any], moto_query: Any) -> Any:
    indexed, Table.query = Table.query, moto_query  # type: ignore[method-assign]
    try:
        return call()
    finally:
        Table.query = indexed  # type: ignore[method-assign]


def _change(client: Any, draw: random.Random, number: int) -> None:
    """One write of any kind, to one of 40 items; some are refused by their condition."""
    key = {"id": {"S": f"item-{draw.randrange(40):02d}"}}
    kind = draw.choice(["put", "put", "update", "remove", "delete", "batch", "refused"])
    attrs = {"group": {"S": draw.choice(PARTITIONS)},
             # Few distinct times: items share a sort key and fall back on the table's key.
             "at": {"S": f"2026-12-07T10:00:0{draw.randrange(4)}"},
             "rank": {"N": str(draw.randrange(3))}, "n": {"N": str(number)}}
    if draw.random() < 0.2:
        del attrs["at"]  # left out of byGroup
    if kind == "put":
        client.put_item(TableName="things", Item={**key, **attrs})
    elif kind == "update":
        client.update_item(TableName="things", Key=key,
                           UpdateExpression="SET #g = :g, #a = :a, n = :n",
                           ExpressionAttributeNames={"#g": "group", "#a": "at"},
                           ExpressionAttributeValues={":g": attrs["group"],
                                                      ":a": {"S": "2026-12-07T10:00:05"},
                                                      ":n": attrs["n"]})
    elif kind == "remove":
        client.update_item(TableName="things", Key=key, UpdateExpression="REMOVE #g",
                           ExpressionAttributeNames={"#g": "group"})
    elif kind == "delete":
        client.delete_item(TableName="things", Key=key)
    elif kind == "batch":
        client.batch_write_item(RequestItems={"things": [
            {"PutRequest": {"Item": {**key, **attrs}}},
            {"DeleteRequest": {"Key": {"id": {"S": f"item-{draw.randrange(40):02d}x"}}}}]})
    else:
        with pytest.raises(ClientError):
            client.put_item(TableName="things", Item={**key, **attrs},
                            ConditionExpression="attribute_not_exists(id) AND n = :never",
                            ExpressionAttributeValues={":never": {"N": "-1"}})


def test_index_queries_answer_as_moto_does_through_every_kind_of_write(dynamodb):
    moto_query = Table.query
    draw = random.Random(16)
    with atomic_requests():
        for number in range(400):
            _change(dynamodb, draw, number)
            if number % 20:
                continue
            for group in PARTITIONS:
                for query in (
                        {"IndexName": "byGroup", "KeyConditionExpression": "#g = :g"},
                        {"IndexName": "byGroup", "KeyConditionExpression": "#g = :g",
                         "ScanIndexForward": False},
                        {"IndexName": "byGroup", "KeyConditionExpression": "#g = :g",
                         "FilterExpression": "n > :half", "ScanIndexForward": False}):
                    values = {":g": {"S": group}}
                    if "FilterExpression" in query:
                        values[":half"] = {"N": str(number // 2)}
                    request = {"TableName": "things", "ExpressionAttributeNames": {"#g": "group"},
                               "ExpressionAttributeValues": values,
                               "Limit": draw.randint(1, 4), **query}
                    indexed = _pages(dynamodb, **request)
                    alone = _as_moto_alone(lambda r=request: _pages(dynamodb, **r), moto_query)
                    assert indexed == alone, (number, request)
            rank = {"TableName": "things", "IndexName": "byRank", "Limit": 3,
                    "KeyConditionExpression": "#r = :r", "ExpressionAttributeNames": {"#r": "rank"},
                    "ExpressionAttributeValues": {":r": {"N": "1"}}}
            assert _pages(dynamodb, **rank) == _as_moto_alone(
                lambda r=rank: _pages(dynamodb, **r), moto_query)


EVERY_TYPE = {
    "id": {"S": "every"}, "group": {"S": "a"}, "at": {"S": "2026-12-07T10:00:00"},
    "rank": {"N": "2"}, "n": {"N": "-1.5e3"}, "blob": {"B": b"\x00\xffbytes"},
    "yes": {"BOOL": True}, "no": {"BOOL": False}, "nothing": {"NULL": True},
    "names": {"SS": ["x", "y"]}, "numbers": {"NS": ["1", "2.5"]}, "blobs": {"BS": [b"a", b"\x01"]},
    "list": {"L": [{"S": "in"}, {"N": "3"}, {"M": {"deep": {"B": b"\x02"}}}, {"L": []}]},
    "map": {"M": {"s": {"S": ""}, "ss": {"SS": ["z"]}, "l": {"L": [{"NULL": True}]},
                  "m": {"M": {}}}},
}


def _every_answer(client: Any) -> list[Any]:
    """An item of every attribute type as each kind of read and write answers it."""
    key = {"id": {"S": "every"}}
    client.put_item(TableName="things", Item=EVERY_TYPE)
    answers = [
        client.get_item(TableName="things", Key=key)["Item"],
        client.query(TableName="things", IndexName="byGroup", KeyConditionExpression="#g = :g",
                     ExpressionAttributeNames={"#g": "group"},
                     ExpressionAttributeValues={":g": {"S": "a"}})["Items"],
        client.batch_get_item(RequestItems={"things": {"Keys": [key]}})["Responses"],
        client.scan(TableName="things", ProjectionExpression="#b, #l, #m.ss",
                    ExpressionAttributeNames={"#b": "blob", "#l": "list", "#m": "map"})["Items"],
        client.update_item(TableName="things", Key=key, UpdateExpression="SET n = n + :one",
                           ExpressionAttributeValues={":one": {"N": "1"}},
                           ReturnValues="ALL_NEW")["Attributes"],
        client.delete_item(TableName="things", Key=key, ReturnValues="ALL_OLD")["Attributes"],
    ]
    return answers


def test_answers_of_every_attribute_type_are_what_moto_writes(dynamodb):
    """The local DynamoDB turns and writes item answers itself: the SDK reads from them what
    it reads from moto's own, binary values, sets and nesting included."""
    plain = _every_answer(dynamodb)
    with atomic_requests():
        written_here = _every_answer(dynamodb)
    assert written_here == plain
    assert plain[0]["blob"] == {"B": b"\x00\xffbytes"}  # the SDK decoded it: not a string
