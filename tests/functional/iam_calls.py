"""What the control plane asks of AWS, and whether a deployed role's policy allows it.

`recording()` notes every AWS call made by the project's own code (the innermost frame of the
project on the stack is in app.py or chalicelib/), with its parameters. `requests_of()` turns a
call into the IAM requests AWS would authorize for it: the action, the resource ARN and the
condition keys AWS sets. `allowed()` evaluates a request against policy documents as IAM does
for one principal: allowed when a statement allows it and none denies it; a statement whose
condition does not hold does not apply. (moto's own evaluator treats a failed condition as a
deny, which would refuse a request that a second statement allows.)
"""

from __future__ import annotations

import ast
import fnmatch
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.client import BaseClient

ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE = (str(ROOT / "app.py"), str(ROOT / "chalicelib") + "/")
REGION, ACCOUNT = "us-east-1", "123456789012"


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any] = field(compare=False, hash=False)
    # For calls IAM authorizes by the tags a resource has: its tags just before the call.
    tags: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        where = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{where}"


def _made_by_the_control_plane() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(str(ROOT)) and "/.venv/" not in name:
            return name.startswith(CONTROL_PLANE)
        frame = frame.f_back  # type: ignore[assignment]
    return False


_BY_RESOURCE_TAG = ("TerminateInstances", "CreateTags", "DeleteTags", "StopInstances",
                    "StartInstances")


def _resources(params: dict[str, Any]) -> list[str]:
    return list(params.get("InstanceIds") or params.get("Resources") or [])


@contextmanager
def recording(ec2: Any) -> Iterator[list[Call]]:
    """Every call the control plane makes while inside; `ec2` (a client of the test's own)
    reads the tags of what a call acts on before the call changes them."""
    calls: list[Call] = []
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def make_api_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if _made_by_the_control_plane():
            service = self.meta.service_model.service_name
            tags = {}
            if service == "ec2" and operation in _BY_RESOURCE_TAG:
                tags = {resource: _ec2_tags_of(ec2, resource) for resource in _resources(params)}
            with lock:
                calls.append(Call(service, operation, dict(params), tags))
        return original(self, operation, params)

    with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
        yield calls


# ---- calls as IAM sees them -----------------------------------------------------------------

def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _table(name: str) -> str:
    return _arn("dynamodb", f"table/{name}")


def _queue(url: str) -> str:
    return _arn("sqs", url.rstrip("/").rsplit("/", 1)[1])


def _dynamodb(op: str, p: dict[str, Any]) -> list[Request]:
    action = f"dynamodb:{op}"
    if op in ("BatchWriteItem", "BatchGetItem"):
        return [Request(action, _table(t)) for t in p["RequestItems"]]
    if op in ("TransactWriteItems", "TransactGetItems"):
        wanted = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        return [Request(f"dynamodb:{wanted[kind]}", _table(body["TableName"]))
                for item in p["TransactItems"] for kind, body in item.items()]
    table = _table(p["TableName"])
    if p.get("IndexName"):
        table += f"/index/{p['IndexName']}"
    return [Request(action, table)]


_S3_ACTIONS = {"HeadObject": "GetObject", "GetObject": "GetObject", "PutObject": "PutObject",
               "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
               "CompleteMultipartUpload": "PutObject", "AbortMultipartUpload":
               "AbortMultipartUpload", "DeleteObject": "DeleteObject", "CopyObject": "PutObject",
               "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
               "HeadBucket": "ListBucket", "DeleteObjects": "DeleteObject"}


def _s3(op: str, p: dict[str, Any]) -> list[Request]:
    action = f"s3:{_S3_ACTIONS.get(op, op)}"
    bucket = f"arn:aws:s3:::{p['Bucket']}"
    if op in ("ListObjectsV2", "ListObjects", "HeadBucket"):
        return [Request(action, bucket)]
    if op == "DeleteObjects":
        return [Request(action, f"{bucket}/{o['Key']}") for o in p["Delete"]["Objects"]]
    found = [Request(action, f"{bucket}/{p['Key']}")]
    if op == "CopyObject":
        source = p["CopySource"]
        source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
        found.append(Request("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/')}"))
    return found


def _sqs(op: str, p: dict[str, Any]) -> list[Request]:
    if op == "CreateQueue":
        return [Request("sqs:CreateQueue", _arn("sqs", p["QueueName"]))]
    if op == "GetQueueUrl":
        return [Request("sqs:GetQueueUrl", _arn("sqs", p["QueueName"]))]
    action = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}.get(op, op)
    return [Request(f"sqs:{action}", _queue(p["QueueUrl"]))]


def _states(op: str, p: dict[str, Any]) -> list[Request]:
    if op == "StartExecution":
        return [Request("states:StartExecution", p["stateMachineArn"])]
    if op in ("DescribeExecution", "StopExecution", "GetExecutionHistory"):
        return [Request(f"states:{op}", p["executionArn"])]
    return [Request(f"states:{op}", "*")]


def _secretsmanager(op: str, p: dict[str, Any]) -> list[Request]:
    if op == "ListSecrets":
        return [Request("secretsmanager:ListSecrets", "*")]
    name = p.get("Name") or p["SecretId"]
    # An ARN ends in six random characters after a hyphen; policies name them with "-*" or "*".
    return [Request(f"secretsmanager:{op}", _arn("secretsmanager", f"secret:{name}-AbCdEf"))]


def _ec2_tags_of(ec2: Any, resource: str) -> dict[str, str]:
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def _ec2_resource(resource: str) -> str:
    kinds = {"i": "instance", "vol": "volume", "lt": "launch-template", "fleet": "fleet"}
    kind = kinds[resource.split("-", 1)[0]]
    return _arn("ec2", f"{kind}/{resource}")


def _image(image_id: str) -> str:
    return _arn("ec2", f"image/{image_id}", account="")


def _snapshot(snapshot_id: str) -> str:
    return _arn("ec2", f"snapshot/{snapshot_id}", account="")


@dataclass
class _Ec2:
    """What IAM authorizes for EC2 calls. A fleet launches through its launch template, and
    AWS authorizes the RunInstances it makes, the tags it writes and the role it passes."""

    role_of_profile: Any  # instance profile ARN or name -> the role ARN it holds
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def requests(self, call: Call) -> list[Request]:
        op, p = call.operation, call.params
        action = f"ec2:{op}"
        if op == "CreateLaunchTemplate":
            self.templates[p["LaunchTemplateName"]] = p["LaunchTemplateData"]
            return [Request(action, "*"), *self._tagging(p, op)]
        if op == "CreateFleet":
            return [Request(action, "*"), *self._fleet(p)]
        if op.startswith("Describe") or op == "DeleteLaunchTemplate":
            return [Request(action, "*")]
        if op in _BY_RESOURCE_TAG:
            return [Request(action, _ec2_resource(resource), tuple(sorted(
                (f"ec2:ResourceTag/{k}", v) for k, v in call.tags[resource].items())))
                for resource in _resources(p)]
        if op in ("AttachVolume", "DetachVolume"):
            found = [Request(action, _ec2_resource(p["VolumeId"]))]
            if p.get("InstanceId"):
                found.append(Request(action, _ec2_resource(p["InstanceId"])))
            return found
        if op == "CreateVolume":
            found = [Request(action, _arn("ec2", "volume/*"))]
            if p.get("SnapshotId"):
                found.append(Request(action, _snapshot(p["SnapshotId"])))
            return found + self._tagging(p, op)
        if op == "DeleteVolume":
            return [Request(action, _ec2_resource(p["VolumeId"]))]
        if op == "CreateSnapshot":
            return [Request(action, _ec2_resource(p["VolumeId"])),
                    Request(action, _snapshot("*")), *self._tagging(p, op)]
        if op == "DeleteSnapshot":
            return [Request(action, _snapshot(p["SnapshotId"]))]
        return [Request(action, "*")]

    def _tagging(self, p: dict[str, Any], creating: str) -> list[Request]:
        return [Request("ec2:CreateTags", _arn("ec2", f"{spec['ResourceType']}/*"),
                        (("ec2:CreateAction", creating),))
                for spec in p.get("TagSpecifications", []) if spec.get("Tags")]

    def _fleet(self, p: dict[str, Any]) -> list[Request]:
        found = self._tagging(p, "CreateFleet")
        for config in p["LaunchTemplateConfigs"]:
            name = config["LaunchTemplateSpecification"]["LaunchTemplateName"]
            data = self.templates[name]
            instance_tags = {t["Key"]: t["Value"] for spec in data.get("TagSpecifications", [])
                             if spec["ResourceType"] == "instance" for t in spec["Tags"]}
            found.append(Request("ec2:RunInstances", _arn("ec2", "instance/*"), tuple(sorted(
                (f"aws:RequestTag/{k}", v) for k, v in instance_tags.items()))))
            found += [Request("ec2:RunInstances", resource) for resource in (
                _image(data["ImageId"]), _arn("ec2", "launch-template/*"),
                _arn("ec2", "network-interface/*"), _arn("ec2", "volume/*"),
                *(_arn("ec2", f"security-group/{g}") for g in data.get("SecurityGroupIds", [])),
                *(_arn("ec2", f"subnet/{o['SubnetId']}") for o in config.get("Overrides", [])
                  if o.get("SubnetId")))]
            found += self._tagging(data, "RunInstances")
            profile = data.get("IamInstanceProfile", {})
            if profile:
                found.append(Request(
                    "iam:PassRole", self.role_of_profile(profile.get("Arn") or profile["Name"]),
                    (("iam:PassedToService", "ec2.amazonaws.com"),)))
        return found


def requests_of(calls: list[Call], role_of_profile: Any) -> list[tuple[Call, Request]]:
    """The IAM requests the calls make, in order, as AWS authorizes them."""
    mappers = {"dynamodb": _dynamodb, "s3": _s3, "sqs": _sqs, "stepfunctions": _states,
               "secretsmanager": _secretsmanager}
    ec2_requests = _Ec2(role_of_profile)
    found = []
    for call in calls:
        mapper = mappers.get(call.service)
        if mapper is not None:
            requests = mapper(call.operation, call.params)
        elif call.service == "ec2":
            requests = ec2_requests.requests(call)
        else:
            requests = [Request(f"{call.service}:{call.operation}", "*")]
        found += [(call, request) for request in requests]
    return found


def role_documents(iam: Any, role: str) -> list[dict[str, Any]]:
    """Every policy document of a role (its ARN or name): inline and attached."""
    name = role.rsplit("/", 1)[-1]
    documents = [iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                 for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]]
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        documents.append(iam.get_policy_version(PolicyArn=attached["PolicyArn"],
                                                VersionId=version)["PolicyVersion"]["Document"])
    return [_document(d) for d in documents]


def _document(document: Any) -> dict[str, Any]:
    if isinstance(document, dict):
        return document
    try:
        return dict(json.loads(document))
    except json.JSONDecodeError:
        # moto's CloudFormation stores an inline policy it created as Python's repr of it.
        return dict(ast.literal_eval(document))


# ---- IAM's evaluation ----------------------------------------------------------------------

def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case: bool = True) -> bool:
    pattern = pattern.replace("[", "[[]").replace("?", "[?]")
    if not case:
        return fnmatch.fnmatch(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(operator: str, key: str, wanted: Any, context: dict[str, str]) -> bool:
    present = key in context
    if operator == "Null":
        return (not present) == (str(wanted).lower() == "true")
    if not present:
        return operator.endswith("IfExists")
    value = context[key]
    wanted = [str(w) for w in _listed(wanted)]
    base = operator.removesuffix("IfExists")
    if base in ("StringEquals", "ArnEquals"):
        return value in wanted
    if base in ("StringLike", "ArnLike"):
        return any(_glob(w, value) for w in wanted)
    if base == "StringNotEquals":
        return value not in wanted
    raise AssertionError(f"the evaluator does not know the condition operator {operator}")


def _applies(statement: dict[str, Any], request: Request) -> bool:
    if not any(_glob(a, request.action, case=False) for a in _listed(statement["Action"])):
        return False
    if not any(_glob(r, request.resource) for r in _listed(statement.get("Resource", "*"))):
        return False
    context = dict(request.context)
    return all(_condition_holds(operator, key, wanted, context)
               for operator, keys in statement.get("Condition", {}).items()
               for key, wanted in keys.items())


def allowed(documents: list[dict[str, Any]], request: Request) -> bool:
    statements = [s for d in documents for s in _listed(d["Statement"])]
    applying = [s for s in statements if _applies(s, request)]
    return any(s["Effect"] == "Allow" for s in applying) and not any(
        s["Effect"] == "Deny" for s in applying)


def wildcards(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements that allow every action of a service, or everything, on every resource."""
    return [s for d in documents for s in _listed(d["Statement"])
            if s["Effect"] == "Allow" and "*" in _listed(s.get("Resource", "*"))
            and any(a == "*" or a.endswith(":*") for a in _listed(s["Action"]))]


_EVENTS_RULE = _arn("events", "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")


def task_requests(resource_type: str, resource: str, parameters: dict[str, Any]) -> list[Request]:
    """What IAM authorizes for one task a Step Functions execution scheduled, as its role."""
    if resource_type == "lambda":
        return [Request("lambda:InvokeFunction", parameters["FunctionName"])]
    if resource_type == "sqs":
        return [Request("sqs:SendMessage", _queue(parameters["QueueUrl"]))]
    if resource_type == "states" and resource.startswith("startExecution"):
        machine = parameters["StateMachineArn"]
        found = [Request("states:StartExecution", machine)]
        if ".sync" in resource:
            name = machine.rsplit(":", 1)[1]
            execution = _arn("states", f"execution:{name}:an-execution")
            found += [Request("states:DescribeExecution", execution),
                      Request("states:StopExecution", execution),
                      *(Request(f"events:{action}", _EVENTS_RULE)
                        for action in ("PutTargets", "PutRule", "DescribeRule"))]
        return found
    raise AssertionError(f"no IAM mapping for the {resource_type} task {resource}")
