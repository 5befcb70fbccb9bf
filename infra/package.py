"""Build the deployable template: Chalice's generated SAM template with infra/resources.json
merged in, the Lambda environment wired to those resources, and the function's IAM policy.

    python -m infra.package OUT_DIR      (or: make package)

Deploy the result with `aws cloudformation package` / `deploy` as Chalice's docs describe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib import fleet, workflows
from chalicelib.config import RESOURCE_ENV

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "infra" / "resources.json"
TABLES = ("JobsTable", "ImagesTable", "UsersTable", "LicensesTable", "UsageTable", "StorageTable",
          "UtilizationTable")
# The Chalice-generated logical ids this file adds to.
FUNCTION = "APIHandler"
ROLE = "DefaultRole"


def _value_of(logical_id: str, resources: dict[str, Any], outputs: dict[str, Any]) -> Any:
    if logical_id in resources:
        return {"Ref": logical_id}
    return outputs[logical_id]["Value"]


def _ec2_arn(resource: str) -> dict[str, Any]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


def _policy() -> dict[str, Any]:
    table_arns: list[Any] = []
    for table in TABLES:
        arn = {"Fn::GetAtt": [table, "Arn"]}
        table_arns += [arn, {"Fn::Sub": ["${T}/index/*", {"T": arn}]}]
    return {
        "PolicyName": "OpenFloatControlPlane",
        "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow",
                 "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                         "${AWS::AccountId}:log-group:/aws/lambda/*"}},
                {"Effect": "Allow",
                 "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                            "dynamodb:DeleteItem", "dynamodb:Query"],
                 "Resource": table_arns},
                {"Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                 "Resource": {"Fn::Sub": "${DataBucket.Arn}/*"}},
                {"Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": {"Fn::GetAtt": ["DataBucket", "Arn"]}},
                # Describe calls take no resource: AWS allows them only on "*".
                {"Effect": "Allow",
                 "Action": ["ec2:DescribeInstances", "ec2:DescribeInstanceTypes",
                            "ec2:DescribeSpotPriceHistory", "ec2:DescribeAvailabilityZones",
                            "ec2:DescribeSecurityGroups", "ec2:DescribeImages",
                            "ec2:DescribeSubnets", "ec2:DescribeLaunchTemplateVersions",
                            "ec2:DescribeVolumes", "ec2:DescribeSnapshots",
                            "pricing:GetProducts"],
                 "Resource": "*"},
                # Launching workers: an instant EC2 Fleet from a per-launch copy of the workers'
                # launch template. EC2 scopes these to no resource the stack can name first.
                {"Effect": "Allow",
                 "Action": ["ec2:CreateFleet", "ec2:CreateLaunchTemplate",
                            "ec2:DeleteLaunchTemplate"],
                 "Resource": "*"},
                # A launch may create only instances tagged with their job; the image, subnet,
                # security groups, network interface and volumes it uses are not tagged.
                {"Effect": "Allow", "Action": ["ec2:RunInstances"],
                 "Resource": _ec2_arn("instance/*"),
                 "Condition": {"Null": {f"aws:RequestTag/{fleet.JOB_TAG}": "false"}}},
                {"Effect": "Allow", "Action": ["ec2:RunInstances"],
                 "Resource": [_ec2_arn(kind) for kind in (
                     "subnet/*", "security-group/*", "network-interface/*", "volume/*",
                     "key-pair/*", "launch-template/*", "placement-group/*",
                     "spot-instances-request/*")]
                 + [{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::image/*"}]},
                # Tags are written as a launch, a fleet, a template, a volume or a snapshot is
                # created; later only on instances that already carry a job's tag.
                {"Effect": "Allow", "Action": ["ec2:CreateTags"],
                 "Resource": [_ec2_arn(kind) for kind in (
                     "instance/*", "volume/*", "launch-template/*", "fleet/*")]
                 + [{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"}],
                 "Condition": {"StringEquals": {"ec2:CreateAction": [
                     "RunInstances", "CreateFleet", "CreateLaunchTemplate", "CreateVolume",
                     "CreateSnapshot"]}}},
                {"Effect": "Allow", "Action": ["iam:PassRole"],
                 "Resource": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
                 "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
                # EC2 Fleet and Spot act through their service-linked roles, made on first use.
                {"Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
                                         "aws-service-role/*"},
                 "Condition": {"StringEquals": {"iam:AWSServiceName": [
                     "ec2fleet.amazonaws.com", "spot.amazonaws.com"]}}},
                # Jobs' data volumes follow them as EBS volumes, moved by the workflows.
                {"Effect": "Allow",
                 "Action": ["ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume",
                            "ec2:DeleteVolume"],
                 "Resource": [_ec2_arn("volume/*"), _ec2_arn("instance/*"),
                              {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"}]},
                {"Effect": "Allow", "Action": ["ec2:CreateSnapshot", "ec2:DeleteSnapshot"],
                 "Resource": [_ec2_arn("volume/*"),
                              {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"}]},
                {"Effect": "Allow",
                 "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:TerminateInstances"],
                 "Resource": _ec2_arn("instance/*"),
                 "Condition": {"Null": {f"ec2:ResourceTag/{fleet.JOB_TAG}": "false"}}},
                {"Effect": "Allow",
                 "Action": ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl",
                            "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                            "sqs:GetQueueAttributes"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:"
                                         "${AWS::AccountId}:openfloat-${AWS::StackName}-*"}},
                {"Effect": "Allow", "Action": ["states:StartExecution"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:"
                                         "${AWS::AccountId}:stateMachine:${AWS::StackName}-*"}},
                {"Effect": "Allow", "Action": ["states:DescribeExecution"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:"
                                         "${AWS::AccountId}:execution:${AWS::StackName}-*:*"}},
                # Task tokens name no resource: AWS allows these only on "*".
                {"Effect": "Allow", "Action": ["states:SendTaskSuccess", "states:SendTaskFailure"],
                 "Resource": "*"},
                {"Effect": "Allow",
                 "Action": ["secretsmanager:CreateSecret", "secretsmanager:GetSecretValue",
                            "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret",
                            "secretsmanager:DescribeSecret"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                                         "${AWS::AccountId}:secret:openfloat/${AWS::StackName}/*"}},
                # `float secret ls`: ListSecrets takes no resource; the API filters by name.
                {"Effect": "Allow", "Action": ["secretsmanager:ListSecrets"], "Resource": "*"},
            ],
        },
    }


def logical_id(function_name: str) -> str:
    """The logical id Chalice gives a Lambda function: `task-set-status` → `TaskSetStatus`."""
    return "".join(part.capitalize() for part in function_name.split("-"))


def _state_machine_arn(workflow: str) -> dict[str, Any]:
    # Built from the name, not a Ref: the functions that start workflows would otherwise
    # depend on the state machines, which depend on the functions.
    return {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
                       f"stateMachine:${{AWS::StackName}}-{workflow}"}


def _execution_arns(workflow: str) -> dict[str, Any]:
    return {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
                       f"execution:${{AWS::StackName}}-{workflow}:*"}


def _substitution(placeholder: str) -> Any:
    """What a `${Name}` in the ASL becomes: a task function's ARN, or a child workflow's."""
    if placeholder in workflows.CHILD_WORKFLOWS:
        return _state_machine_arn(workflows.CHILD_WORKFLOWS[placeholder])
    return {"Fn::GetAtt": [logical_id(workflows.TASK_FUNCTIONS[placeholder]), "Arn"]}


def _nested() -> list[str]:
    """The workflows that run only as nested executions of another."""
    return sorted(set(workflows.CHILD_WORKFLOWS.values()) | set(workflows.STARTED))


def _workflow_resources() -> dict[str, Any]:
    """One state machine per statemachines/ file, its task placeholders bound to the Chalice
    functions, and the role they run as."""
    resources: dict[str, Any] = {
        "WorkflowsRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "OpenFloatWorkflows", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "lambda:InvokeFunction",
                     "Resource": [{"Fn::GetAtt": [logical_id(name), "Arn"]}
                                  for name in workflows.TASK_FUNCTIONS.values()]},
                    {"Effect": "Allow", "Action": "sqs:SendMessage",
                     "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:"
                                             "${AWS::AccountId}:openfloat-${AWS::StackName}-*"}},
                    # Nested executions (startExecution.sync:2): the child workflows, and
                    # the workflows settle runs.
                    {"Effect": "Allow", "Action": ["states:StartExecution"],
                     "Resource": [_state_machine_arn(child) for child in _nested()]},
                    {"Effect": "Allow",
                     "Action": ["states:DescribeExecution", "states:StopExecution"],
                     "Resource": [_execution_arns(child) for child in _nested()]},
                    {"Effect": "Allow",
                     "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                     "Resource": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:"
                                             "${AWS::AccountId}:rule/"
                                             "StepFunctionsGetEventsForStepFunctionsExecutionRule"}},
                ]}}]}},
    }
    for workflow in workflows.WORKFLOWS:
        properties: dict[str, Any] = {
            "StateMachineName": {"Fn::Sub": f"${{AWS::StackName}}-{workflow}"},
            "DefinitionString": workflows.path_of(workflow).read_text(),
            "RoleArn": {"Fn::GetAtt": ["WorkflowsRole", "Arn"]},
        }
        substitutions = {placeholder: _substitution(placeholder)
                         for placeholder in sorted(workflows.placeholders(workflow))}
        if substitutions:  # CloudFormation refuses an empty map
            properties["DefinitionSubstitutions"] = substitutions
        resources[f"{logical_id(workflow)}Workflow"] = {
            "Type": "AWS::StepFunctions::StateMachine", "Properties": properties}
    return resources


def merge_template(resources_path: Path = RESOURCES) -> dict[str, Any]:
    """infra/resources.json plus the wiring of the Chalice functions to it: their settings,
    their IAM policy, the workflows, and the queues that feed the event handlers."""
    template = json.loads(resources_path.read_text())
    resources, outputs = template["Resources"], template.get("Outputs", {})
    variables = {env: _value_of(key, resources, outputs) for env, key in RESOURCE_ENV.items()}
    arns = {w: _state_machine_arn(w) for w in workflows.WORKFLOWS}
    variables["WORKFLOW_ARNS"] = {"Fn::Join": ["", [
        "{", *[part for index, (w, arn) in enumerate(arns.items()) for part in (
            ("," if index else "") + f'"{w}":"', arn, '"')], "}"]]}
    functions = [FUNCTION, *(logical_id(f.name) for f in _chalice_functions())]
    for function in functions:
        resources[function] = {"Properties": {"Environment": {"Variables": variables}}}
    resources[ROLE] = {"Properties": {"Policies": [_policy()]}}
    resources.update(_workflow_resources())
    for function, queue in (("Ec2Events", "Ec2EventsQueue"), ("AgentEvents", "AgentEventsQueue")):
        # The handlers answer with the records they could not handle; only those come back.
        resources[f"{function}Source"] = {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "FunctionName": {"Ref": function}, "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"]}}
    resources.update(_reconciler_schedule())
    return template


# How often the reconciler looks for jobs and instances no event told about.
RECONCILE_SCHEDULE = "rate(1 minute)"


def _reconciler_schedule() -> dict[str, Any]:
    function = logical_id("reconcile")
    return {
        "ReconcileSchedule": {"Type": "AWS::Events::Rule", "Properties": {
            "Description": "OpenFloat's reconciler: jobs and instances no event told about",
            "ScheduleExpression": RECONCILE_SCHEDULE, "State": "ENABLED",
            "Targets": [{"Id": "reconcile", "Arn": {"Fn::GetAtt": [function, "Arn"]}}]}},
        "ReconcileSchedulePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": function},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": ["ReconcileSchedule", "Arn"]}}},
    }


def _chalice_functions() -> list[Any]:
    from app import app

    return list(app.pure_lambda_functions)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.package OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    merge = out.parent / "merge-template.json"
    merge.write_text(json.dumps(merge_template(), indent=2))
    # Chalice formats ARNs with a region even when it only writes files.
    env = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ}
    return subprocess.call(
        [str(Path(sys.executable).with_name("chalice")), "package", "--merge-template", str(merge),
         str(out)],
        cwd=ROOT,
        env=env,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
