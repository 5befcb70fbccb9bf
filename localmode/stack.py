"""The deployable template, deployed into the local AWS: the output of `make package` transformed
as CloudFormation's SAM transform does it, its code uploaded as `aws cloudformation package`
uploads it, the stack created, and the settings the control plane reads from what it created."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.core.common_models import CloudFormationModel
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import (
    to_py27_compatible_template,
    undo_mark_unicode_str_in_template,
)

from chalicelib.config import RESOURCE_ENV
from localmode.lambdas import Handler, handler_named
from localmode.queues import QueueFeeder

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "build" / "package"
SAM_TEMPLATE = "sam.json"
CODE = "deployment.zip"
# API Gateway's part of the template. moto imports only OpenAPI 3 bodies, not the Swagger 2.0
# one Chalice writes, so its REST API would have no methods and no deployment; the local mode
# serves the API from the function API Gateway invokes (the APIHandler's Handler) instead.
# Resources of these types, and whatever refers to them, are left out of the local stack.
FRONT_DOOR = frozenset({"AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment",
                        "AWS::ApiGateway::Stage"})
# The AWS managed policies a SAM function's `Policies` may name, by name. The transform asks
# IAM for this list; a fixed one keeps it offline and says exactly what a template may use.
MANAGED_POLICIES: dict[str, str] = {
    "AWSLambdaBasicExecutionRole":
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaSQSQueueExecutionRole":
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


class StackError(RuntimeError):
    """The packaged template could not be deployed; the message says what and why."""


def references(node: Any) -> set[str]:
    """The logical ids a template fragment refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text, names = (value, {}) if isinstance(value, str) else (value[0], value[1])
                found |= set(_SUB_NAME.findall(text)) - set(names)
                found |= references(names)
            else:
                found |= references(value)
    return {name for name in found if not name.startswith("AWS::")}


def without_front_door(template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The template with FRONT_DOOR's resources and everything that refers to them (resources,
    outputs) taken out; the logical ids taken out."""
    resources = dict(template["Resources"])
    dropped = {name for name, r in resources.items() if r["Type"] in FRONT_DOOR}
    while True:
        more = {name for name, r in resources.items()
                if name not in dropped and references(r) & dropped}
        if not more:
            break
        dropped |= more
    outputs = {name: o for name, o in template.get("Outputs", {}).items()
               if not references(o) & dropped}
    kept = {name: r for name, r in resources.items() if name not in dropped}
    return {**template, "Resources": kept, "Outputs": outputs}, sorted(dropped)


def translate(sam: dict[str, Any], code_uri: str, parameters: dict[str, str],
              region: str) -> dict[str, Any]:
    """The SAM template as CloudFormation's transform in `region` turns it into plain
    CloudFormation, with every function's code at `code_uri` (what `aws cloudformation
    package` writes)."""
    template = json.loads(json.dumps(sam))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    values: dict[str, Any] = dict(parameters)
    to_py27_compatible_template(template, values)
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        translated = translator.translate(template, parameter_values=values,
                                          get_managed_policy_map=lambda: dict(MANAGED_POLICIES))
    except Exception as error:  # the translator raises its own classes, each with a message
        raise StackError(f"the SAM transform refused the packaged template: {error}") from error
    return undo_mark_unicode_str_in_template(translated)  # type: ignore[no-any-return]


def upload_code(s3: Any, bucket: str, zip_path: Path) -> str:
    """Put the functions' code in `bucket` under its MD5, as `aws cloudformation package` does;
    its S3 URI."""
    data = zip_path.read_bytes()
    key = hashlib.md5(data).hexdigest()  # noqa: S324 - the CLI's naming, not a security use
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


class _QueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy, which moto's CloudFormation skips: each queue's Policy set."""

    def __init__(self, logical_id: str, queues: list[str]) -> None:
        self.logical_id, self.queues = logical_id, queues

    @property
    def physical_resource_id(self) -> str:
        return self.logical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str,
            region_name: str, **kwargs: Any) -> _QueuePolicy:
        from moto.sqs.models import sqs_backends

        properties = cloudformation_json["Properties"]
        # A queue's Ref is its URL; the backend knows it by name.
        names = [url.rsplit("/", 1)[-1] for url in properties["Queues"]]
        for name in names:
            sqs_backends[account_id][region_name].set_queue_attributes(
                name, {"Policy": json.dumps(properties["PolicyDocument"])})
        return cls(resource_name, names)


@contextmanager
def faithful_cloudformation() -> Iterator[None]:
    """While inside, moto's CloudFormation creates state machines as AWS's does: with their
    `DefinitionSubstitutions` applied (moto ignores them), and in the Step Functions that runs
    executions when moto's interpreter is on (moto puts them where nothing runs them); and it
    creates queue policies, which it skips."""
    from moto.cloudformation.parsing import get_model_map
    from moto.stepfunctions import models
    from moto.stepfunctions.responses import get_backend

    # moto finds resource types among CloudFormationModel's subclasses, once: _QueuePolicy
    # is one of them from its definition on, and this makes the lookup see it.
    get_model_map.cache_clear()

    machine = models.StateMachine
    original = machine.__dict__["create_from_cloudformation_json"]

    def create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
               region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        definition = properties.get("DefinitionString", "")
        for name, value in properties.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace(f"${{{name}}}", str(value))
        tags = [{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags", [])]
        return get_backend(account_id, region_name).create_state_machine(
            properties.get("StateMachineName", resource_name), definition,
            properties.get("RoleArn", ""), tags=tags)

    machine.create_from_cloudformation_json = classmethod(create)  # type: ignore[assignment]
    try:
        yield
    finally:
        machine.create_from_cloudformation_json = original  # type: ignore[method-assign]


@dataclass
class DeployedStack:
    """A stack created from the packaged template: its outputs, its resources by logical id
    (type, physical id), and what was left out of it locally (FRONT_DOOR)."""

    name: str
    outputs: dict[str, str]
    resources: dict[str, tuple[str, str]]
    left_out: list[str] = field(default_factory=list)

    def of_type(self, resource_type: str) -> dict[str, str]:
        """Logical id → physical id of the stack's resources of one type."""
        return {name: physical for name, (kind, physical) in self.resources.items()
                if kind == resource_type}

    def settings(self, lambda_client: Any) -> dict[str, str]:
        """The control plane's settings: the Environment of the stack's functions, as
        CloudFormation resolved it. One process serves them all here, so all must agree."""
        environments = {}
        for name, physical in self.of_type("AWS::Lambda::Function").items():
            configuration = lambda_client.get_function_configuration(FunctionName=physical)
            environments[name] = configuration.get("Environment", {}).get("Variables", {})
        if not environments:
            raise StackError(f"stack {self.name} has no Lambda function")
        first, *others = environments.items()
        for name, variables in others:
            if variables != first[1]:
                differing = sorted(k for k in set(variables) | set(first[1])
                                   if variables.get(k) != first[1].get(k))
                raise StackError(f"functions {first[0]} and {name} of stack {self.name} differ "
                                 f"in {', '.join(differing)}")
        missing = [env for env in (*RESOURCE_ENV, "WORKFLOW_ARNS") if env not in first[1]]
        if missing:
            raise StackError(f"the functions of stack {self.name} have no {', '.join(missing)}")
        return dict(first[1])


def deploy(session: Any, stack_name: str, parameters: dict[str, str],
           package_dir: Path = PACKAGE_DIR) -> DeployedStack:
    """Deploy `package_dir` (the output of `make package`) as the stack `stack_name`."""
    sam_path, code_path = package_dir / SAM_TEMPLATE, package_dir / CODE
    for path in (sam_path, code_path):
        if not path.is_file():
            raise StackError(f"{path} is missing: run `make package` first")
    s3 = session.client("s3")
    artifacts = f"{stack_name}-artifacts"
    s3.create_bucket(Bucket=artifacts)
    code_uri = upload_code(s3, artifacts, code_path)
    template, left_out = without_front_door(
        translate(json.loads(sam_path.read_text()), code_uri, parameters, session.region_name))
    # A template this size goes through S3, as `aws cloudformation deploy` sends it.
    s3.put_object(Bucket=artifacts, Key=f"{stack_name}.template", Body=json.dumps(template))
    cloudformation = session.client("cloudformation")
    with faithful_cloudformation(), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            cloudformation.create_stack(
                StackName=stack_name,
                TemplateURL=f"https://{artifacts}.s3.amazonaws.com/{stack_name}.template",
                Parameters=[{"ParameterKey": k, "ParameterValue": v}
                            for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
        except Exception as error:  # CloudFormation's answer, or moto's failing resource
            raise StackError(f"stack {stack_name} was not created: {error}") from error
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise StackError(f"stack {stack_name} is {stack['StackStatus']}: "
                         f"{stack.get('StackStatusReason', 'no reason given')}")
    created = {r["LogicalResourceId"]: (r["ResourceType"], r["PhysicalResourceId"])
               for r in cloudformation.list_stack_resources(
                   StackName=stack_name)["StackResourceSummaries"]}
    holding = conditions(template, parameters)
    skipped = sorted(name for name, resource in template["Resources"].items()
                     if name not in created and holding.get(resource.get("Condition"), True))
    if skipped:
        reasons = "; ".join(str(w.message) for w in warned) or "no reason given"
        raise StackError(f"stack {stack_name} did not create {', '.join(skipped)}: {reasons}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return DeployedStack(stack_name, outputs, created, left_out)


def conditions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    """Whether each of the template's conditions holds with these parameters (the defaults for
    the rest), so a resource left out by its condition is not taken for one moto skipped. Only
    what the template's conditions use is known; anything else is refused."""
    declared = template.get("Parameters", {})
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        value = parameters.get(name, declaration.get("Default"))
        values[name] = (value.split(",") if declaration.get("Type") == "CommaDelimitedList"
                        and isinstance(value, str) else value)
    definitions = template.get("Conditions", {})
    known: dict[str, bool] = {}

    def value_of(node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and len(node) == 1:
            (function, argument), = node.items()
            if function == "Ref" and argument in values:
                return values[argument]
            if function == "Fn::Join":
                separator, items = argument
                return separator.join(str(value_of(item)) for item in value_of(items))
            if function == "Fn::Equals":
                left, right = argument
                return value_of(left) == value_of(right)
            if function == "Fn::Not":
                return not value_of(argument[0])
            if function == "Fn::And":
                return all(value_of(item) for item in argument)
            if function == "Fn::Or":
                return any(value_of(item) for item in argument)
            if function == "Condition":
                return holds(argument)
        if isinstance(node, list):
            return [value_of(item) for item in node]
        raise StackError(f"a condition of the template uses {json.dumps(node)}, which the local "
                         "stack cannot evaluate")

    def holds(name: str) -> bool:
        if name not in known:
            known[name] = bool(value_of(definitions[name]))
        return known[name]

    return {name: holds(name) for name in definitions}


def event_sources(session: Any, stack: DeployedStack) -> list[QueueFeeder]:
    """One feeder per SQS event source mapping of the stack, handing batches to the handler
    its function names. Not started."""
    from moto.sqs.models import sqs_backends

    lambda_client, sqs = session.client("lambda"), session.client("sqs")
    feeders = []
    for name, uuid in stack.of_type("AWS::Lambda::EventSourceMapping").items():
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        queue_arn = mapping["EventSourceArn"]
        if not queue_arn.startswith("arn:aws:sqs:"):
            raise StackError(f"{name}: the local mode feeds only SQS event sources, "
                             f"not {queue_arn}")
        _, _, _, region, account, queue = queue_arn.split(":")
        # Lambda polls a queue in batches and honours ReportBatchItemFailures; moto instead
        # pushes each message to the function inside SendMessage and ignores the answer. The
        # feeder polls as Lambda does, so moto's push is taken off the queue.
        sqs_backends[account][region].queues[queue].lambda_event_source_mappings.clear()
        function = lambda_client.get_function_configuration(FunctionName=mapping["FunctionArn"])
        feeders.append(QueueFeeder(sqs, sqs.get_queue_url(QueueName=queue)["QueueUrl"],
                                   handler_named(function["Handler"]), name,
                                   batch_size=mapping.get("BatchSize", 10)))
    return feeders


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """The period of an EventBridge `rate(...)` expression, in seconds."""
    match = _RATE.match(expression)
    if not match:
        raise StackError(f"the local mode runs only rate(N unit) schedules, not {expression!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def schedules(session: Any, stack: DeployedStack) -> list[tuple[Handler, str, int]]:
    """Each Lambda target of the stack's scheduled rules: its handler, a name, its period in
    seconds (moto records schedules but never fires them)."""
    events, lambda_client = session.client("events"), session.client("lambda")
    found = []
    for name, rule in stack.of_type("AWS::Events::Rule").items():
        described = events.describe_rule(Name=rule)
        if not described.get("ScheduleExpression"):
            continue
        seconds = rate_seconds(described["ScheduleExpression"])
        for target in events.list_targets_by_rule(Rule=rule)["Targets"]:
            if ":lambda:" not in target["Arn"]:
                raise StackError(f"{name}: the local mode runs only Lambda targets of a "
                                 f"schedule, not {target['Arn']}")
            function = lambda_client.get_function_configuration(FunctionName=target["Arn"])
            found.append((handler_named(function["Handler"]), f"{name}/{target['Id']}", seconds))
    return found
