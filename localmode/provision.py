"""Create the OpCenter's AWS resources from infra/ in whatever AWS the session points at
(moto for the tests and the local mode) and return the settings the control plane reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib import workflows
from chalicelib.config import RESOURCE_ENV
from localmode import trial

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "resources.json"


class ProvisionError(RuntimeError):
    """The stack did not come up; the message carries CloudFormation's reason."""


# moto's stock Amazon Linux AMI: the local instance manager runs agents as processes, so the
# image only has to exist for RunInstances.
LOCAL_WORKER_IMAGE = "ami-12c6146b"


def deploy_workflows(stepfunctions: Any, stack_name: str) -> dict[str, str]:
    """Create one state machine per statemachines/ file, its tasks named by the app's own
    function names (the local Lambda runs them in-process) and its nested executions by the
    ARNs of the machines created before it; the ARNs by workflow name."""
    names: dict[str, str] = dict(workflows.TASK_FUNCTIONS)
    # moto checks neither the role nor what it may do; AWS gets its role from infra.package.
    role = f"arn:aws:iam::123456789012:role/{stack_name}-workflows"
    arns: dict[str, str] = {}
    for name in workflows.WORKFLOWS:
        arns[name] = stepfunctions.create_state_machine(
            name=f"{stack_name}-{name}", definition=workflows.definition(name, names),
            roleArn=role)["stateMachineArn"]
        names.update({placeholder: arns[child]
                      for placeholder, child in workflows.CHILD_WORKFLOWS.items() if child == name})
    return arns


def provision(session: Any, stack_name: str, template: Path = TEMPLATE,
              worker_image: str = LOCAL_WORKER_IMAGE,
              license_key: str | None = None) -> dict[str, str]:
    """Create the stack from `template` and the workflows from statemachines/, and map them
    to the control plane's settings."""
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name, TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": "WorkerImageId", "ParameterValue": worker_image},
                    {"ParameterKey": "LicenseIssuerKey",
                     "ParameterValue": license_key or trial.public_key()}])
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise ProvisionError(f"stack {stack_name} is {stack['StackStatus']}: "
                             f"{stack.get('StackStatusReason', 'no reason given')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in RESOURCE_ENV.values() if key not in outputs]
    if missing:
        raise ProvisionError(f"{template} has no output for {', '.join(missing)}")
    settings = {env: outputs[key] for env, key in RESOURCE_ENV.items()}
    settings["WORKFLOW_ARNS"] = json.dumps(
        deploy_workflows(session.client("stepfunctions"), stack_name))
    return settings
