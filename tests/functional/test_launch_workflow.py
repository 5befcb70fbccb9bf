"""The launch workflow: plan, launch with capacity fallbacks, start through the agent, and
every failure ending in a named status with no instance left running."""

from __future__ import annotations

from chalicelib import fleet, workers
from chalicelib.placement import launch_plan
from chalicelib.wire.specs import CpuRange, Range, VmPolicy
from chalicelib.wire.status import JobStatus
from tests.functional.jobs_helpers import seed_job
from tests.functional.workflow_helpers import running_instances, simulated_agent


def _submitted(flows, job_id, **spec):
    job = seed_job(flows.runtime, flows.store, job_id, JobStatus.SUBMITTED)
    if spec:
        flows.store.record_fields(job, {"spec": job.spec.model_copy(update=spec)})
    return job


def _launch(flows, job_id, start_seconds=10):
    return flows.run("launch", f"{job_id}-launch-1", {
        "jobId": job_id, "launchNumber": 1,
        "timeouts": flows.timeouts(startSeconds=start_seconds)}, timeout=60)


def _types(flows, job_id):
    found = flows.runtime.ec2.describe_instances(Filters=[
        {"Name": "tag:openfloat:job", "Values": [job_id]}])
    return [(i["InstanceType"], i.get("InstanceLifecycle", "on-demand"))
            for r in found["Reservations"] for i in r["Instances"]]


def test_a_job_is_placed_launched_started_and_executing(flows):
    _submitted(flows, "happy", cpu={"min": 2, "max": 4}, mem={"min": 4, "max": 8},
               vmPolicy={"spotOnly": True})
    seen: list = []
    simulated_agent(flows, None, True, seen, job_id="happy")
    result = _launch(flows, "happy")
    assert result["status"] == "SUCCEEDED", result
    job = flows.store.get_job("happy")
    assert job.status == JobStatus.EXECUTING and job.instanceId
    assert [h.to for h in job.history] == [JobStatus.SUBMITTED, JobStatus.INITIALIZING,
                                           JobStatus.STARTING, JobStatus.EXECUTING]
    assert job.history[-1].reason == f"running on {job.instanceId}"
    (run,) = seen
    assert run.kind == "run" and run.job.jobId == "happy" and run.job.scriptKey == job.scriptKey
    (kind, market), = _types(flows, "happy")
    assert market == "spot" and run.job.cpus in (2, 3, 4)


def _fleet_calls(flows):
    """The CreateFleet requests the control plane makes from now on."""
    calls: list = []
    flows.runtime.ec2.meta.events.register(
        "provide-client-params.ec2.CreateFleet", lambda params, **_: calls.append(params))
    return calls


def test_a_spot_round_is_one_fleet_launch_over_every_candidate_type(flows):
    _submitted(flows, "round", cpu={"min": 2, "max": 2}, mem={"min": 4, "max": 8},
               vmPolicy={"spotOnly": True})
    (attempt,) = launch_plan(fleet.offers(flows.runtime), CpuRange(min=2, max=2),
                             Range(min=4, max=8), None, VmPolicy(spotOnly=True))
    assert len(attempt.instanceTypes) > 1
    calls = _fleet_calls(flows)
    simulated_agent(flows, None, True, [], job_id="round")
    assert _launch(flows, "round")["status"] == "SUCCEEDED"
    (call,) = calls
    assert call["Type"] == "instant"
    assert call["SpotOptions"]["AllocationStrategy"] == "price-capacity-optimized"
    assert call["TargetCapacitySpecification"]["DefaultTargetCapacityType"] == "spot"
    (config,) = call["LaunchTemplateConfigs"]
    subnets = {s.subnet_id for s in workers.subnets(flows.runtime)}
    assert len(subnets) > 1
    assert {(o["InstanceType"], o["SubnetId"]) for o in config["Overrides"]} == {
        (t, s) for t in attempt.instanceTypes for s in subnets}
    job = flows.store.get_job("round")
    described = fleet.describe(flows.runtime, job.instanceId)
    assert (job.instanceType, job.instanceZone) == (
        described["InstanceType"], described["Placement"]["AvailabilityZone"])
    assert job.instanceType in attempt.instanceTypes and job.instanceZone
    # The launch's own template went once EC2 answered; the stack's stays.
    templates = flows.runtime.ec2.describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in templates] == [
        flows.runtime.config.worker_launch_template]


def test_a_type_without_capacity_leaves_ec2_the_others_of_the_round(flows, no_capacity):
    _submitted(flows, "crowded", cpu={"min": 2, "max": 2}, mem={"min": 4, "max": 8},
               vmPolicy={"spotOnly": True})
    (attempt,) = launch_plan(fleet.offers(flows.runtime), CpuRange(min=2, max=2),
                             Range(min=4, max=8), None, VmPolicy(spotOnly=True))
    no_capacity.add(("spot", attempt.instanceTypes[0]))
    calls = _fleet_calls(flows)
    simulated_agent(flows, None, True, [], job_id="crowded")
    assert _launch(flows, "crowded")["status"] == "SUCCEEDED"
    ((kind, market),) = _types(flows, "crowded")
    assert market == "spot" and kind in attempt.instanceTypes[1:]
    assert len(calls) == 1
    assert flows.store.get_job("crowded").instanceType == kind


def test_spot_first_falls_back_to_on_demand_when_spot_is_gone(flows, no_capacity):
    no_capacity.add(("spot", "*"))
    _submitted(flows, "fallback", cpu={"min": 2, "max": 2}, mem={"min": 4, "max": 4},
               vmPolicy={"spotFirst": True, "retryLimit": 2, "retryInterval": 1})
    simulated_agent(flows, None, True, [], job_id="fallback")
    assert _launch(flows, "fallback")["status"] == "SUCCEEDED"
    job = flows.store.get_job("fallback")
    assert job.status == JobStatus.EXECUTING
    assert [market for _, market in _types(flows, "fallback")] == ["on-demand"]


def test_spot_only_without_capacity_ends_in_no_available_host(flows, no_capacity):
    no_capacity.add(("spot", "*"))
    _submitted(flows, "stuck", vmPolicy={"spotOnly": True})
    result = _launch(flows, "stuck")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("stuck")
    assert job.status == JobStatus.NO_AVAILABLE_HOST
    assert job.history[-1].reason.startswith("no instance could be launched")
    assert running_instances(flows) == []


def test_a_job_no_instance_type_fits_ends_in_no_available_host(flows):
    _submitted(flows, "huge", cpu={"min": 1024, "max": 1024})
    result = _launch(flows, "huge")
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("huge")
    assert job.status == JobStatus.NO_AVAILABLE_HOST and "NoCandidate" in job.history[-1].reason


def test_an_agent_that_never_answers_fails_the_job_and_releases_the_instance(flows):
    _submitted(flows, "silent", vmPolicy={"onDemand": True})
    simulated_agent(flows, None, False, [], job_id="silent")
    result = _launch(flows, "silent", start_seconds=2)
    assert result["status"] == "SUCCEEDED", result  # the workflow settled the job itself
    job = flows.store.get_job("silent")
    assert job.status == JobStatus.FAIL_TO_EXECUTE
    assert "did not start the job in time" in job.history[-1].reason
    assert running_instances(flows) == []


def test_an_agent_failure_is_named_in_the_history(flows):
    _submitted(flows, "locked", vmPolicy={"onDemand": True})
    simulated_agent(flows, None, "RegistryAuthFailed", [], job_id="locked")
    assert _launch(flows, "locked")["status"] == "SUCCEEDED"
    job = flows.store.get_job("locked")
    assert job.status == JobStatus.FAIL_TO_EXECUTE
    assert "RegistryAuthFailed" in job.history[-1].reason
    assert running_instances(flows) == []
