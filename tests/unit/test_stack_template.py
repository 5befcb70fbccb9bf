"""What the local deployment reads from a template: references, the part left out, schedules."""

import json
import re

import pytest

from localmode.provision import TEMPLATE
from localmode.stack import StackError, conditions, rate_seconds, references, without_front_door


def test_references_are_found_in_ref_getatt_and_sub_but_not_in_pseudo_parameters():
    fragment = {"A": {"Ref": "Queue"}, "B": {"Fn::GetAtt": ["Role", "Arn"]},
                "C": {"Fn::GetAtt": "Table.StreamArn"},
                "D": {"Fn::Sub": "arn:${AWS::Partition}:x:${Api}/${Fn.Arn}/${Local}"},
                "E": {"Fn::Sub": ["${Local}-${Bucket}", {"Local": {"Ref": "Key"}}]},
                "F": [{"Ref": "AWS::StackName"}]}
    assert references(fragment) == {"Queue", "Role", "Table", "Api", "Fn", "Local", "Bucket",
                                    "Key"}


def test_api_gateway_and_what_refers_to_it_are_left_out_and_nothing_else():
    template = {"Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"RestApiId": {"Ref": "Api"}}},
        "Permission": {"Type": "AWS::Lambda::Permission",
                       "Properties": {"SourceArn": {"Fn::Sub": "arn:${Api}/*"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}},
        "Outputs": {"Url": {"Value": {"Fn::Sub": "https://${Api}.example"}},
                    "QueueUrl": {"Value": {"Ref": "Queue"}}}}
    kept, left_out = without_front_door(template)
    assert left_out == ["Api", "Permission", "Stage"]
    assert list(kept["Resources"]) == ["Queue"] and list(kept["Outputs"]) == ["QueueUrl"]


@pytest.mark.parametrize("expression, seconds", [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200),
    ("rate(1 day)", 86400)])
def test_a_rate_schedule_is_read_as_its_period(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 12 * * ? *)", "rate(1 fortnight)", "rate()"])
def test_a_schedule_the_local_mode_cannot_run_is_refused_by_name(expression):
    with pytest.raises(StackError, match=re.escape(expression)):
        rate_seconds(expression)


def test_the_templates_conditions_follow_its_parameters_and_their_defaults():
    template = json.loads(TEMPLATE.read_text())
    assert conditions(template, {}) == {
        "HasWorkerVpc": False, "HasWorkerSubnets": False, "HasWorkerSecurityGroups": False,
        "MakesWorkerSecurityGroup": True, "HasWorkerDataBuckets": False}
    given = conditions(template, {"WorkerDataBuckets": "genomics-raw,genomics-results",
                                  "WorkerSecurityGroupIds": "sg-0a1b", "WorkerVpcId": "vpc-1"})
    assert given == {"HasWorkerVpc": True, "HasWorkerSubnets": False,
                     "HasWorkerSecurityGroups": True, "MakesWorkerSecurityGroup": False,
                     "HasWorkerDataBuckets": True}


def test_a_condition_the_local_stack_cannot_evaluate_is_refused_not_guessed():
    template = {"Parameters": {"Zone": {"Type": "String", "Default": "a"}},
                "Conditions": {"InFirstZone": {"Fn::Equals": [
                    {"Fn::Select": [0, {"Fn::GetAZs": ""}]}, {"Ref": "Zone"}]}}}
    with pytest.raises(StackError, match="Fn::Select"):
        conditions(template, {})
