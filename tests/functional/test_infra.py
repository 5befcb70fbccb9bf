"""The tables the tests and the local mode use are the ones infra/ defines, not a second copy."""

import json

from app import app
from chalicelib import workflows
from chalicelib.auth import login
from chalicelib.config import RESOURCE_ENV, Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from infra.admin import main as create_admin
from infra.admin import stack_settings
from infra.package import logical_id, merge_template
from localmode import trial
from localmode.provision import TEMPLATE, provision
from tests.functional import iam_calls


def _tables(template: dict) -> dict:
    return {k: r["Properties"] for k, r in template["Resources"].items()
            if r["Type"] == "AWS::DynamoDB::Table"}


def _key_schema(elements: list) -> list:
    return [(e["AttributeName"], e["KeyType"]) for e in elements]


def test_every_table_matches_its_definition_in_infra(runtime, settings):
    template = json.loads(TEMPLATE.read_text())
    tables = _tables(template)
    assert set(tables) == {"JobsTable", "ImagesTable", "UsersTable", "LicensesTable", "UsageTable",
                           "StorageTable", "UtilizationTable"}
    for table_id, properties in tables.items():
        env = next(e for e, key in RESOURCE_ENV.items() if key == table_id)
        described = runtime.dynamodb.describe_table(TableName=settings[env])["Table"]
        assert _key_schema(described["KeySchema"]) == _key_schema(properties["KeySchema"])
        indexes = {i["IndexName"]: _key_schema(i["KeySchema"])
                   for i in described.get("GlobalSecondaryIndexes", [])}
        assert indexes == {i["IndexName"]: _key_schema(i["KeySchema"])
                           for i in properties.get("GlobalSecondaryIndexes", [])}
    assert runtime.config == Config.from_env(settings)


def test_a_change_to_the_template_is_what_gets_provisioned(aws, tmp_path):
    template = json.loads(TEMPLATE.read_text())
    jobs = template["Resources"]["JobsTable"]["Properties"]
    jobs["AttributeDefinitions"].append({"AttributeName": "probe", "AttributeType": "S"})
    jobs["GlobalSecondaryIndexes"].append({
        "IndexName": "byProbe", "KeySchema": [{"AttributeName": "probe", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}})
    changed = tmp_path / "resources.json"
    changed.write_text(json.dumps(template))
    settings = provision(aws, "openfloat-probe", changed)
    described = aws.client("dynamodb").describe_table(TableName=settings["JOBS_TABLE"])["Table"]
    assert "byProbe" in {i["IndexName"] for i in described["GlobalSecondaryIndexes"]}


def test_deployment_wires_every_function_and_workflow_to_the_same_resources():
    merged = merge_template()
    resources = merged["Resources"]
    names = ["APIHandler", *(logical_id(f.name) for f in app.pure_lambda_functions)]
    for name in names:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert set(variables) == set(RESOURCE_ENV) | {"WORKFLOW_ARNS"}, name
    variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    for env, logical in RESOURCE_ENV.items():
        if logical in resources:
            assert variables[env] == {"Ref": logical}
        else:
            assert variables[env] == merged["Outputs"][logical]["Value"]
    for workflow in workflows.WORKFLOWS:
        machine = resources[f"{logical_id(workflow)}Workflow"]["Properties"]
        assert machine["DefinitionString"] == workflows.path_of(workflow).read_text()
        substitutions = machine.get("DefinitionSubstitutions", {})
        assert set(substitutions) == workflows.placeholders(workflow)
        for placeholder, value in substitutions.items():
            if placeholder in workflows.CHILD_WORKFLOWS:
                # A nested execution names the state machine the child's file creates.
                child = workflows.CHILD_WORKFLOWS[placeholder]
                assert value["Fn::Sub"].endswith(f"stateMachine:${{AWS::StackName}}-{child}")
                assert f"{logical_id(child)}Workflow" in resources
            else:
                assert value["Fn::GetAtt"][0] in names
    # settle runs every workflow the control plane starts, and those run their children: the
    # workflows' role may start each as a nested execution.
    policy = resources["WorkflowsRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    startable = {arn["Fn::Sub"].rsplit("-", 1)[1] for statement in policy["Statement"]
                 if statement["Action"] == ["states:StartExecution"]
                 for arn in statement["Resource"]}
    assert startable == {*workflows.STARTED, *workflows.CHILD_WORKFLOWS.values()}
    for function, queue in (("Ec2Events", "Ec2EventsQueue"), ("AgentEvents", "AgentEventsQueue")):
        source = resources[f"{function}Source"]["Properties"]
        assert source["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
        # The handlers answer with batchItemFailures; without this Lambda would ignore them.
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The reconciler runs every minute, invoked by its schedule.
    rule = resources["ReconcileSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["Reconcile", "Arn"]}
    permission = resources["ReconcileSchedulePermission"]["Properties"]
    assert (permission["FunctionName"], permission["Principal"]) == (
        {"Ref": "Reconcile"}, "events.amazonaws.com")


def test_the_first_admin_of_a_deployed_stack_can_log_in(aws, monkeypatch, capsys):
    provision(aws, "openfloat-prod")
    monkeypatch.setenv("OPENFLOAT_ADMIN_PASSWORD", "first-admin-password")
    assert create_admin(["openfloat-prod", "--username", "root"]) == 0
    assert create_admin(["openfloat-prod", "--username", "root"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "admin root created", "admin root already exists; left unchanged"]
    runtime = Runtime.from_config(Config.from_env(stack_settings(aws, "openfloat-prod")), aws)
    session = login(runtime, Store(runtime.dynamodb, runtime.config), "root", "first-admin-password",
                    "192.0.2.1")
    assert session.role == "admin"


def _stack(aws, name, **parameters):
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(), Parameters=[
        {"ParameterKey": key, "ParameterValue": value}
        for key, value in {"WorkerImageId": "ami-12c6146b", "LicenseIssuerKey": trial.public_key(),
                           **parameters}.items()])
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    ec2 = aws.client("ec2")
    template = ec2.describe_launch_template_versions(
        LaunchTemplateId=outputs["WorkerLaunchTemplate"], Versions=["$Default"])
    return outputs, template["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def test_workers_launch_by_default_in_the_default_vpc_behind_a_group_of_the_stack(aws):
    outputs, data = _stack(aws, "openfloat-defaults")
    assert outputs["WorkerSubnets"] == "default"
    assert Config.from_env({env: outputs[key] for env, key in RESOURCE_ENV.items()}
                           ).worker_subnets == ()
    (group,) = data["SecurityGroupIds"]
    described = aws.client("ec2").describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    assert described["IpPermissions"] == []
    assert [r["CidrIp"] for r in described["IpPermissionsEgress"][0]["IpRanges"]] == ["0.0.0.0/0"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["IamInstanceProfile"]["Arn"] == outputs["WorkerInstanceProfile"]


def test_given_subnets_and_groups_are_the_ones_workers_launch_with(aws):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{n}.0/24",
                                 AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
               for n, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="workers", Description="workers",
                                      VpcId=vpc)["GroupId"]
    outputs, data = _stack(aws, "openfloat-own-vpc", WorkerVpcId=vpc,
                           WorkerSubnetIds=",".join(subnets), WorkerSecurityGroupIds=group)
    assert Config.from_env({env: outputs[key] for env, key in RESOURCE_ENV.items()}
                           ).worker_subnets == tuple(subnets)
    assert data["SecurityGroupIds"] == [group]
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert not [g for g in groups if g["Description"].startswith("OpenFloat workers")]


def test_the_worker_role_allows_exact_actions_only():
    resources = json.loads(TEMPLATE.read_text())["Resources"]
    role = resources["WorkerRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"}
    policies = [*role["Policies"], *(
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
        and {"Ref": "WorkerRole"} in r["Properties"]["Roles"])]
    statements = [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage", "s3:GetObject",
        "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "states:SendTaskSuccess",
        "states:SendTaskFailure", "states:SendTaskHeartbeat", "secretsmanager:GetSecretValue",
        # Only on the data buckets the stack names (WorkerDataBuckets).
        "s3:GetBucketLocation", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}


def test_a_first_admin_password_easy_to_guess_is_refused_before_anything_is_written(
        aws, monkeypatch, capsys):
    provision(aws, "openfloat-prod")
    monkeypatch.setenv("OPENFLOAT_ADMIN_PASSWORD", "password1234")
    assert create_admin(["openfloat-prod", "--username", "root"]) == 1
    assert "OPENFLOAT_ADMIN_PASSWORD: password: too easy to guess" in capsys.readouterr().err
    runtime = Runtime.from_config(Config.from_env(stack_settings(aws, "openfloat-prod")), aws)
    assert Store(runtime.dynamodb, runtime.config).get_user("root") is None


def _worker_role(aws, stack_name):
    (role,) = [r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]
               if r["RoleName"].startswith(f"{stack_name}-WorkerRole")]
    return role


def _worker_role_documents(aws, stack_name):
    return iam_calls.role_documents(aws.client("iam"), _worker_role(aws, stack_name))


def _s3(action, arn):
    return iam_calls.Request(f"s3:{action}", arn)


def test_workers_mount_the_data_buckets_the_stack_names_without_keys_and_no_others(aws):
    # What s3fs asks of S3 for a read-write volume mounted with the workers' own role.
    _stack(aws, "openfloat-buckets", WorkerDataBuckets="genomics-raw,genomics-results")
    documents = _worker_role_documents(aws, "openfloat-buckets")
    for bucket in ("genomics-raw", "genomics-results"):
        for action, arn in [("ListBucket", f"arn:aws:s3:::{bucket}"),
                            ("GetBucketLocation", f"arn:aws:s3:::{bucket}"),
                            ("GetObject", f"arn:aws:s3:::{bucket}/run1/sample.fastq"),
                            ("PutObject", f"arn:aws:s3:::{bucket}/work/ab/cd/.exitcode"),
                            ("DeleteObject", f"arn:aws:s3:::{bucket}/work/ab/cd/tmp"),
                            ("AbortMultipartUpload", f"arn:aws:s3:::{bucket}/big.bam")]:
            assert iam_calls.allowed(documents, _s3(action, arn)), (action, arn)
    # Neither a bucket whose name begins alike, nor another one, nor another kind of call.
    for action, arn in [("GetObject", "arn:aws:s3:::genomics-raw-private/key"),
                        ("ListBucket", "arn:aws:s3:::genomics"),
                        ("GetObject", "arn:aws:s3:::someone-elses/key"),
                        ("PutBucketPolicy", "arn:aws:s3:::genomics-raw"),
                        ("DeleteBucket", "arn:aws:s3:::genomics-raw")]:
        assert not iam_calls.allowed(documents, _s3(action, arn)), (action, arn)
    assert iam_calls.wildcards(documents) == []


def test_by_default_workers_reach_no_bucket_but_the_stacks_own(aws):
    _stack(aws, "openfloat-no-buckets")
    assert aws.client("iam").list_role_policies(
        RoleName=_worker_role(aws, "openfloat-no-buckets"))["PolicyNames"] == ["OpenFloatWorker"]
    documents = _worker_role_documents(aws, "openfloat-no-buckets")
    assert not iam_calls.allowed(documents, _s3("GetObject", "arn:aws:s3:::genomics-raw/key"))
    assert not iam_calls.allowed(documents, _s3("ListBucket", "arn:aws:s3:::genomics-raw"))
