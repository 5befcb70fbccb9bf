"""WaveRider's rules: when a job moves, which way, to what sizes, and when it stays put."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.placement import Offer
from chalicelib.waverider import COOLDOWN_SECONDS, LastMove, Move, decide
from chalicelib.wire.specs import MigratePolicy
from chalicelib.wire.utilization import UtilizationPoint

GIB = 2**30
START = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def offer(name: str, vcpus: int, gib: float, gpus: int = 0) -> Offer:
    return Offer(instance_type=name, vcpus=vcpus, memory_gib=gib, architectures=("x86_64",),
                 markets=("spot", "on-demand"), spot_price=0.01 * vcpus + 0.002 * gib, gpus=gpus)


OFFERS = [offer("t2.nano", 1, 0.5), offer("t2.micro", 1, 1), offer("t2.small", 1, 2),
          offer("t3.micro", 2, 1), offer("t3.small", 2, 2), offer("t3.medium", 2, 4),
          offer("r5.large", 2, 16), offer("m5.large", 2, 8), offer("m5.xlarge", 4, 16),
          offer("c5.xlarge", 4, 8), offer("c5.2xlarge", 8, 16), offer("g4dn.xlarge", 4, 16, 1)]
BY_NAME = {o.instance_type: o for o in OFFERS}


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def series(*samples: dict[str, float], on: str = "t2.micro", seconds: float = 15,
           start: datetime = START) -> list[UtilizationPoint]:
    """Back-to-back samples on an instance of type `on`: cpu (demand %), mem (working set %),
    and optionally peak (%), swap (MiB), pressure, oom (kills so far), gap (s before it)."""
    current = BY_NAME[on]
    limit = int(current.memory_gib * GIB)
    points, end = [], start
    for sample in samples:
        end += timedelta(seconds=seconds + sample.get("gap", 0))
        mem = int(limit * sample.get("mem", 10) / 100)
        points.append(UtilizationPoint(
            time=iso(end), instanceId="i-1", instanceType=on, seconds=seconds,
            vcpus=current.vcpus, cpuRatio=sample.get("cpu", 10),
            cpuDemandRatio=sample.get("cpu", 10), memoryBytes=mem,
            memoryPeakBytes=int(limit * sample.get("peak", sample.get("mem", 10)) / 100),
            memoryLimitBytes=limit, swapBytes=int(sample.get("swap", 0) * 2**20),
            memoryPressure=sample.get("pressure"), oomKills=int(sample.get("oom", 0))))
    return points


def run(policy: str | None, points: list[UtilizationPoint], on: str = "t2.micro",
        last: LastMove | None = None, gpus: int = 0) -> Move | None:
    rules = MigratePolicy.model_validate(policy) if policy is not None else None
    return decide(rules, points, BY_NAME[on], OFFERS, last_move=last, gpus=gpus)


def steady(count: int, **sample: float) -> list[dict[str, float]]:
    return [dict(sample) for _ in range(count)]


# ---- staying put ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", [None, "[disable=true]", "[enable=false]"])
def test_no_policy_or_a_disabled_one_never_moves(policy):
    assert run(policy, series(*steady(40, cpu=100, mem=99, swap=5))) is None


def test_no_samples_no_move():
    assert run("[enable=true]", []) is None


def test_within_bounds_stays():
    assert run("[enable=true]", series(*steady(40, cpu=50, mem=50))) is None


def test_above_for_less_than_the_duration_stays():
    # 15 s samples: two cover 30 s (the default upperBoundDuration), one does not.
    assert run("[enable=true]", series({"mem": 50}, {"mem": 95})) is None
    assert run("[mem.upperBoundDuration=31s]", series(*steady(2, mem=95))) is None


def test_a_dip_inside_the_duration_restarts_it():
    assert run("[enable=true]", series({"mem": 95}, {"mem": 70}, {"mem": 95})) is None


def test_a_gap_in_the_samples_breaks_the_run():
    assert run("[enable=true]", series({"mem": 95}, {"mem": 95, "gap": 30})) is None


# ---- moving up -----------------------------------------------------------------------------

def test_memory_above_its_bound_for_the_duration_doubles_without_a_step():
    move = run("[enable=true]", series(*steady(2, mem=95)))
    assert move is not None
    assert move.mem.min == 2 and move.directions == {"mem": "up"}
    assert move.reason == "mem 95% > 90% for 30 s: 1 GB → 2 GB"
    # CPUs are kept: no fewer than now.
    assert move.cpu.min == 1


def test_memory_step_and_ratio_and_duration_keys():
    move = run("[mem.upperBoundRatio=80,mem.upperBoundDuration=10s,mem.step=3]",
               series({"mem": 85}))
    assert move is not None and move.mem.min == 4
    assert move.reason == "mem 85% > 80% for 10 s: 1 GB → 4 GB"


def test_step_auto_overrides_the_step():
    move = run("[mem.step=3,stepAuto=true]", series(*steady(2, mem=95)), on="t3.medium")
    assert move is not None and move.mem.min == 8


def test_memory_limit_is_never_crossed():
    move = run("[mem.step=8,mem.limit=4]", series(*steady(2, mem=95)))
    assert move is not None and move.mem.min == 4 and move.mem.max == 4
    # At the limit already: nowhere to go.
    assert run("[mem.limit=4]", series(*steady(2, mem=95), on="t3.medium"), on="t3.medium") \
        is None


def test_cpu_demand_above_its_bound_moves_up():
    move = run("[cpu.upperBoundRatio=80,cpu.upperBoundDuration=10s]", series({"cpu": 97}))
    assert move is not None and move.cpu.min == 2 and move.directions == {"cpu": "up"}
    assert move.reason == "cpu 97% > 80% for 10 s: 1 vCPU → 2 vCPUs"
    assert move.mem.min == 1  # memory kept


def test_cpu_step_and_limit():
    move = run("[cpu.step=3,cpu.limit=4]", series(*steady(2, cpu=99), on="t3.medium"),
               on="t3.medium")
    assert move is not None and move.cpu.min == 4 and move.cpu.max == 4
    assert run("[cpu.limit=1]", series(*steady(2, cpu=99))) is None


def test_both_resources_move_in_one_go():
    move = run("[enable=true]", series(*steady(2, cpu=99, mem=95)))
    assert move is not None and move.cpu.min == 2 and move.mem.min == 2
    assert move.directions == {"cpu": "up", "mem": "up"}
    assert "mem 95% > 90%" in move.reason and "cpu 99% > 90%" in move.reason


def test_a_disabled_resource_is_left_alone():
    assert run("[cpu.disable=true]", series(*steady(2, cpu=99))) is None
    move = run("[mem.disable=true]", series(*steady(2, cpu=99, mem=99)))
    assert move is not None and move.directions == {"cpu": "up"}


def test_no_type_with_the_sizes_no_move():
    # 16 vCPUs: nothing in the catalogue has them.
    assert run("[cpu.step=8]", series(*steady(2, cpu=99), on="c5.2xlarge"), on="c5.2xlarge") \
        is None


def test_gpu_jobs_move_only_to_gpu_types():
    points = series(*steady(20, cpu=2, mem=2), on="g4dn.xlarge")
    assert run("[enable=true]", points, on="g4dn.xlarge", gpus=0) is not None
    # The only GPU type has 4 vCPUs: a GPU job has nowhere smaller to go.
    assert run("[enable=true]", points, on="g4dn.xlarge", gpus=1) is None


# ---- moving down ---------------------------------------------------------------------------

def test_idle_cpu_below_its_bound_moves_down_after_the_duration():
    points = series(*steady(1, cpu=3, mem=50), on="t3.small")
    policy = "[cpu.lowerBoundRatio=20,cpu.lowerBoundDuration=10s]"
    move = run(policy, points, on="t3.small")
    assert move is not None and move.cpu.max == 1 and move.directions == {"cpu": "down"}
    assert move.reason == "cpu 3% < 20% for 10 s: 2 vCPUs → 1 vCPU"
    assert move.mem.min == 2  # memory kept
    # No 1-vCPU type has 4 GB: a t3.medium stays.
    assert run(policy, series(*steady(1, cpu=3, mem=50), on="t3.medium"), on="t3.medium") \
        is None


def test_the_default_lower_duration_is_five_minutes():
    assert run("[enable=true]", series(*steady(19, cpu=1, mem=50), on="t3.small"),
               on="t3.small") is None  # 285 s
    move = run("[enable=true]", series(*steady(20, cpu=1, mem=50), on="t3.small"),
               on="t3.small")
    assert move is not None and move.directions == {"cpu": "down"}


def test_memory_down_halves_and_keeps_the_peak_under_the_upper_bound():
    move = run("[mem.lowerBoundRatio=30,mem.lowerBoundDuration=30s]",
               series(*steady(2, mem=10, peak=20), on="m5.large"), on="m5.large")
    # 20% of 8 GB = 1.6 GB at peak; under 90% that needs at least 1.78 GB; halved: 4 GB.
    assert move is not None and move.mem.max == 4 and move.mem.min == 1.78
    assert move.reason == "mem 10% < 30% for 30 s: 8 GB → 4 GB"


def test_down_never_below_the_lower_limit():
    assert run("[cpu.lowerLimit=2]", series(*steady(20, cpu=1, mem=50), on="t3.medium"),
               on="t3.medium") is None
    move = run("[cpu.lowerLimit=2,cpu.step=1]", series(*steady(20, cpu=1, mem=50),
                                                       on="m5.xlarge"), on="m5.xlarge")
    assert move is not None and move.cpu.min == 2 and move.cpu.max == 3


def test_down_is_refused_when_the_job_would_go_straight_back_up():
    # 45% of 4 vCPUs busy is 1.8 vCPUs: 90% of 2, within an upper bound of 90 but not of 60.
    points = series(*steady(2, cpu=45, mem=50), on="m5.xlarge")
    move = run("[cpu.lowerBoundRatio=50,cpu.lowerBoundDuration=30s]", points, on="m5.xlarge")
    assert move is not None and move.cpu.min == 2 and move.cpu.max == 2
    policy = "[cpu.lowerBoundRatio=50,cpu.upperBoundRatio=60,cpu.lowerBoundDuration=30s]"
    assert run(policy, points, on="m5.xlarge") is None  # it would need 3, and no type has 3
    assert run(policy, series(*steady(2, cpu=49, mem=50), on="t3.medium"), on="t3.medium") \
        is None


def test_an_impossible_down_does_not_block_an_up():
    # cpu wants down to 1 vCPU, memory up to 8 GB: no 1-vCPU type has 8 GB, so only memory moves.
    policy = "[cpu.lowerBoundRatio=20,cpu.lowerBoundDuration=30s]"
    move = run(policy, series(*steady(2, cpu=2, mem=95), on="t3.medium"), on="t3.medium")
    assert move is not None and move.directions == {"mem": "up"} and move.cpu.min == 2


# ---- evadeOOM ------------------------------------------------------------------------------

@pytest.mark.parametrize("sample, why", [
    ({"mem": 60, "peak": 93}, "evadeOOM: memory 93% of 1 GB"),
    ({"mem": 60, "swap": 12}, "evadeOOM: the job swaps (12 MiB)"),
    ({"mem": 60, "pressure": 25}, "evadeOOM: memory pressure 25%"),
    ({"mem": 60, "oom": 1}, "evadeOOM: the kernel killed a process of the job for memory"),
])
def test_evade_oom_moves_up_at_once(sample, why):
    points = series({"mem": 60}, sample, seconds=2)
    move = run("[evadeOOM=true]", points)
    assert move is not None and move.evade_oom and move.mem.min == 2
    assert move.reason.startswith(why) and move.reason.endswith(": 1 GB → 2 GB")
    assert run("[enable=true]", points) is None  # without evadeOOM: a 4 s blip is nothing


def test_evade_oom_respects_the_memory_limit_and_mem_disable():
    points = series({"mem": 95}, seconds=2)
    assert run("[evadeOOM=true,mem.limit=1]", points) is None
    assert run("[evadeOOM=true,mem.disable=true]", points) is None
    move = run("[evadeOOM=true,mem.step=0.5]", points)
    assert move is not None and move.mem.min == 1.5


def test_old_oom_kills_do_not_count_again():
    assert run("[evadeOOM=true]", series({"oom": 1}, {"oom": 1}, seconds=2)) is None


# ---- the cool-down -------------------------------------------------------------------------

def _just_moved(mem: str | None = None, cpu: str | None = None, ago: float = 60) -> LastMove:
    return LastMove(time=iso(START - timedelta(seconds=ago)), cpu=cpu, mem=mem)  # type: ignore[arg-type]


def test_no_move_back_during_the_cool_down():
    points = series(*steady(2, mem=5, peak=5), on="t3.medium")
    policy = "[mem.lowerBoundRatio=10,mem.lowerBoundDuration=30s]"
    assert run(policy, points, on="t3.medium", last=_just_moved(mem="up")) is None
    later = _just_moved(mem="up", ago=COOLDOWN_SECONDS + 1)
    move = run(policy, points, on="t3.medium", last=later)
    assert move is not None and move.directions == {"mem": "down"} and move.mem.max == 2


def test_the_cool_down_holds_only_the_other_direction_and_the_same_resource():
    points = series(*steady(2, mem=95), on="t3.medium")
    assert run("[enable=true]", points, on="t3.medium", last=_just_moved(mem="up")) is not None
    down = series(*steady(2, cpu=1, mem=50), on="t3.small")
    policy = "[cpu.lowerBoundRatio=20,cpu.lowerBoundDuration=30s]"
    assert run(policy, down, on="t3.small", last=_just_moved(mem="up")) is not None
    assert run(policy, down, on="t3.small", last=_just_moved(cpu="up")) is None


def test_evade_oom_ignores_the_cool_down():
    move = run("[evadeOOM=true]", series({"mem": 95}, seconds=2),
               last=_just_moved(mem="down"))
    assert move is not None and move.evade_oom
