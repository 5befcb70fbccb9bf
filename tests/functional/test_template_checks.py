"""The templates deployment uses pass cfn-lint with no error or warning, and no IAM statement
anywhere in them allows a wildcard action on every resource."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from localmode.stack import translate

INFRA = Path(__file__).resolve().parents[2] / "infra"
CODE_URI = "s3://openfloat-artifacts/0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def templates(packaged) -> dict[str, dict]:
    """The packaged SAM template, the CloudFormation it becomes, and every template in infra/."""
    sam = json.loads((packaged / "sam.json").read_text())
    found = {"sam.json": sam, "sam.json, transformed": translate(sam, CODE_URI, {}, "us-east-1")}
    for path in sorted(INFRA.glob("*.json")):
        document = json.loads(path.read_text())
        if "Resources" in document:
            found[f"infra/{path.name}"] = document
    return found


def test_cfn_lint_finds_nothing_in_any_template(templates):
    found = {name: [f"{m.rule.id} {m.message} (line {m.linenumber})"
                    for m in lint(json.dumps(template, indent=1))]
             for name, template in templates.items()}
    assert found == {name: [] for name in templates}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(node: Any, where: str) -> list[tuple[str, dict]]:
    """Every statement of every policy document in a template fragment, with where it is."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        statements = _listed(node.get("Statement", []))
        if statements and all(isinstance(s, dict) and "Effect" in s for s in statements):
            found += [(where, statement) for statement in statements]
        for key, value in node.items():
            if key != "Statement":
                found += _statements(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _statements(value, f"{where}[{index}]")
    return found


def wildcard_grants(template: dict) -> list[str]:
    """Each Allow statement that grants an action with `*` in it (or every action but some)
    on Resource `*` (or every resource but some)."""
    bad = []
    for where, statement in _statements(template.get("Resources", {}), "Resources"):
        if statement.get("Effect") != "Allow":
            continue
        everywhere = "NotResource" in statement or "*" in _listed(statement.get("Resource"))
        actions = [a for a in _listed(statement.get("Action", [])) if isinstance(a, str)]
        wide = "NotAction" in statement or any("*" in action for action in actions)
        if everywhere and wide:
            bad.append(f"{where}: {statement.get('Action', statement.get('NotAction'))}")
    return bad


def test_no_policy_allows_a_wildcard_action_on_every_resource(templates):
    assert {name: wildcard_grants(t) for name, t in templates.items()} == {
        name: [] for name in templates}


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "*", "Resource": "*"},
    {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:*"], "Resource": ["*"]},
    {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
    {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::private/*"},
], ids=["all", "service", "prefix", "not-action", "not-resource"])
def test_the_policy_check_catches_a_wildcard_wherever_it_is(templates, statement):
    template = copy.deepcopy(templates["sam.json"])
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    roles[0]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
    assert len(wildcard_grants(template)) == 1
    # In a SAM function's own Policies, too, before and after the transform.
    template = copy.deepcopy(templates["sam.json"])
    function = next(r for r in template["Resources"].values()
                    if r["Type"] == "AWS::Serverless::Function")
    function["Properties"].pop("Role")
    function["Properties"]["Policies"] = [{"Version": "2012-10-17", "Statement": [statement]}]
    assert len(wildcard_grants(template)) == 1
    assert len(wildcard_grants(translate(template, CODE_URI, {}, "us-east-1"))) == 1


def test_exact_actions_on_every_resource_pass_the_policy_check(templates):
    # What AWS gives no resource-level permission for may be listed by name on `*`.
    template = copy.deepcopy(templates["sam.json"])
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    roles[0]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"})
    assert wildcard_grants(template) == []


def _granted_queue_prefixes(template: dict, action: str) -> list[str]:
    """The queue-name prefixes (`openfloat-${AWS::StackName}-`) on which some role allows
    `action`."""
    prefixes = []
    for _, statement in _statements(template.get("Resources", {}), "Resources"):
        if statement.get("Effect") != "Allow" or action not in _listed(statement.get("Action")):
            continue
        for resource in _listed(statement.get("Resource")):
            text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else resource
            if isinstance(text, str) and text.endswith("*") and ":sqs:" in text:
                prefixes.append(text.split("${AWS::AccountId}:", 1)[-1].rstrip("*"))
    return prefixes


def test_the_control_plane_may_receive_from_every_queue_of_the_stack(templates):
    # Without a QueueName CloudFormation names a queue STACK-LogicalId-RANDOM, which no
    # `openfloat-${AWS::StackName}-*` grant covers; cfn-lint cannot tell.
    template = templates["sam.json"]
    prefixes = _granted_queue_prefixes(template, "sqs:ReceiveMessage")
    assert prefixes
    queues = {name: resource["Properties"].get("QueueName")
              for name, resource in template["Resources"].items()
              if resource["Type"] == "AWS::SQS::Queue"}
    assert {"Ec2EventsQueue", "AgentEventsQueue"} <= set(queues)
    unreadable = [name for name, queue_name in queues.items()
                  if not isinstance(queue_name, dict)
                  or not any(queue_name.get("Fn::Sub", "").startswith(p) for p in prefixes)]
    assert unreadable == []
