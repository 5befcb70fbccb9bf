"""The local DynamoDB endpoint: moto's DynamoDB answered on connections that stay open, with
DynamoDB's refusals as the SDK knows them."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localmode.atomic import atomic_requests
from localmode.dynamodb_server import DynamoDBServer


@pytest.fixture
def served() -> Iterator[tuple[DynamoDBServer, Any]]:
    with mock_aws(), atomic_requests():
        server = DynamoDBServer("127.0.0.1", 0).start()
        try:
            # A client of its own endpoint: the in-process mock does not see its calls.
            client = boto3.client("dynamodb", endpoint_url=server.url, region_name="eu-west-1",
                                  aws_access_key_id="t", aws_secret_access_key="t",
                                  config=Config(retries={"max_attempts": 1}))
            yield server, client
        finally:
            server.stop()


def test_calls_are_answered_on_one_connection_with_dynamodb_refusals(served):
    server, client = served
    client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    for n in range(20):
        client.put_item(TableName="t", Item={"id": {"S": f"item-{n}"}, "n": {"N": str(n)}})
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName="t", Item={"id": {"S": "item-1"}},
                        ConditionExpression="attribute_not_exists(id)")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    with pytest.raises(ClientError) as missing:
        client.get_item(TableName="nope", Key={"id": {"S": "x"}})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert client.get_item(TableName="t", Key={"id": {"S": "item-7"}})["Item"]["n"] == {"N": "7"}
    # The table is where the request's signature put it: in the client's region.
    assert boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="t",
                        aws_secret_access_key="t").list_tables()["TableNames"] == ["t"]
    assert server.connections == 1


def test_a_request_without_a_length_is_refused_and_its_connection_closed(served):
    server, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    connection.putrequest("POST", "/")
    connection.putheader("X-Amz-Target", "DynamoDB_20120810.ListTables")
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 411
    assert answer.getheader("Connection") == "close"
