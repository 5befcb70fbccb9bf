"""Item answers read straight from DynamoDB's JSON are what botocore makes of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.store import answers
from chalicelib.store.answers import read_items_directly
from tests.functional.test_local_tables import EVERY_TYPE


def _client() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="t",
                        aws_secret_access_key="t")


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        plain = _client()
        plain.create_table(
            TableName="things", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                  for n in ("id", "group")],
            GlobalSecondaryIndexes=[{"IndexName": "byGroup", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "group", "KeyType": "HASH"}]}])
        plain.put_item(TableName="things", Item=EVERY_TYPE)
        plain.put_item(TableName="things", Item={"id": {"S": "other"}, "group": {"S": "a"},
                                                 "tiny": {"B": b""}})
        yield plain, read_items_directly(_client())


def _answers(client: Any) -> list[Any]:
    key = {"id": {"S": "every"}}
    answers = [
        client.get_item(TableName="things", Key=key),
        client.get_item(TableName="things", Key={"id": {"S": "missing"}}),
        client.query(TableName="things", IndexName="byGroup", KeyConditionExpression="#g = :g",
                     ExpressionAttributeNames={"#g": "group"}, Limit=1,
                     ExpressionAttributeValues={":g": {"S": "a"}}),
        client.scan(TableName="things"),
        client.scan(TableName="things", Select="COUNT"),
        client.batch_get_item(RequestItems={"things": {"Keys": [key, {"id": {"S": "other"}}]}}),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers


def test_every_kind_of_item_answer_reads_as_botocore_reads_it(clients, monkeypatch):
    plain, direct = clients
    expected = _answers(plain)
    read: list[str] = []
    item = answers._item
    monkeypatch.setattr(answers, "_item", lambda found: read.append(found["id"]["S"]) or item(found))
    assert _answers(direct) == expected
    # Read here, not by botocore: every item of the answers.
    assert sorted(read) == sorted(["every", "every", "every", "other", "every", "other"])
    assert expected[0]["Item"]["blobs"] == {"BS": [b"a", b"\x01"]}
    assert "LastEvaluatedKey" in expected[2]  # what is left is still parsed by botocore


def test_a_refusal_is_still_an_error_with_its_code(clients):
    _, direct = clients
    with pytest.raises(ClientError) as missing:
        direct.query(TableName="nope", KeyConditionExpression="id = :i",
                     ExpressionAttributeValues={":i": {"S": "x"}})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
