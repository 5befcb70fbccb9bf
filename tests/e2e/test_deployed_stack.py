"""The local OpCenter runs the template `make package` builds for AWS: a real job, reclaimed
through EventBridge as EC2 reclaims it, completes, and everything that carried it out is what
the CloudFormation stack created from that template."""

from __future__ import annotations

import boto3

from localmode.__main__ import STACK
from localmode.demo import check_result, expected_result, run_job_through_reclaims
from tests.e2e.conftest import python_image


def _client(local, service):
    return boto3.client(service, endpoint_url=local.aws_endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def test_a_reclaimed_job_completes_on_the_stack_the_packaged_template_creates(local, admin_cli):
    steps, mib = 12, 16
    job = run_job_through_reclaims(admin_cli, python_image(admin_cli), steps=steps, mib=mib,
                                   reclaims=1, notice=15, say=lambda text: None, name="stack")
    check_result(admin_cli, job, steps, expected_result(steps, mib), reclaims=1)
    cloudformation = _client(local, "cloudformation")
    (stack,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    created = cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    machines = {r["PhysicalResourceId"] for r in created
                if r["ResourceType"] == "AWS::StepFunctions::StateMachine"}
    functions = {r["ResourceType"] for r in created} >= {"AWS::Lambda::Function",
                                                        "AWS::Lambda::EventSourceMapping"}
    assert machines and functions
    sfn = _client(local, "stepfunctions")
    assert {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]} == machines
    ran = {machine for machine in machines
           if any(e["name"].startswith(job["id"]) for e in sfn.list_executions(
               stateMachineArn=machine)["executions"])}
    assert {arn.rsplit(":", 1)[1] for arn in ran} >= {
        f"{STACK}-{name}" for name in ("settle", "launch", "migrate", "finish")}
