"""WaveRider: from what a job uses of its instance and its migratePolicy, whether to move it,
and to what sizes. Pure: samples, policy, the instance it runs on and the types EC2 offers go
in; a move (new cpu and mem ranges, and the reason its history names) or nothing comes out.

The rules, per resource (`cpu.*`, `mem.*`):
- up: the ratio stays above `upperBoundRatio` for `upperBoundDuration` → at least `step` more
  (vCPUs, GB), at most `limit`;
- down: it stays below `lowerBoundRatio` for `lowerBoundDuration` → at least `step` less, at
  least `lowerLimit`, and never so small that the job's peak of that window would be above the
  upper bound there — which would only send it back up;
- no `step` (or `stepAuto=true`): the step is the current size, so a move doubles or halves;
- `evadeOOM=true`: as soon as the job's memory nears its limit, it starts to swap, memory
  pressure stalls it or the kernel kills one of its processes, it moves up at once — no
  duration to wait, no cool-down;
- a cool-down: after WaveRider moved a resource one way, it does not move it back the other way
  for `COOLDOWN_SECONDS`.
CPU is judged by demand (time used plus time the job waited for a CPU) and memory by working
set, both against the instance (wire.utilization). Both resources may change in one move.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from chalicelib.moves import instant
from chalicelib.placement import ARCHITECTURE, Offer
from chalicelib.wire.specs import BoundRule, CpuRange, MigratePolicy, Range
from chalicelib.wire.utilization import EVADE_PRESSURE, EVADE_RATIO, UtilizationPoint

Resource = Literal["cpu", "mem"]
Direction = Literal["up", "down"]

# After a move one way, the same resource is not moved the other way for this long.
COOLDOWN_SECONDS = 600
# Samples further apart than this (beyond the interval each covers) break a run: the agent was
# silent in between, so nothing is known of that time.
GAP_SECONDS = 5.0
# Without a lowerLimit, how small a move down may go: one vCPU, and any memory above none.
_SMALLEST: dict[str, float] = {"cpu": 1.0, "mem": 0.001}


@dataclass(frozen=True)
class LastMove:
    """A move WaveRider made: when, and which way each resource went."""

    time: str
    cpu: Direction | None = None
    mem: Direction | None = None


@dataclass(frozen=True)
class Move:
    """Move the job so that its vCPUs fall in `cpu` and its memory (GB) in `mem`."""

    cpu: CpuRange
    mem: Range
    reason: str
    directions: dict[Resource, Direction] = field(default_factory=dict)
    evade_oom: bool = False


@dataclass(frozen=True)
class _Change:
    resource: Resource
    direction: Direction
    low: float
    high: float
    reason: str


def _held(points: Sequence[UtilizationPoint], seconds: float,
          holds: Callable[[UtilizationPoint], bool]) -> list[UtilizationPoint] | None:
    """The newest run of samples for which `holds` is true, if it covers `seconds` without a
    gap; None if it does not (yet)."""
    run: list[UtilizationPoint] = []
    end = instant(points[-1].time) if points else None
    start_of_newer: datetime | None = None
    for point in reversed(points):
        ended = instant(point.time)
        if ended is None or end is None or not holds(point):
            return None
        if start_of_newer is not None and (start_of_newer - ended).total_seconds() > GAP_SECONDS:
            return None
        run.append(point)
        started = ended.timestamp() - point.seconds
        start_of_newer = datetime.fromtimestamp(started, tz=ended.tzinfo)
        if end.timestamp() - started >= seconds - 1e-6:
            return run
    return None


def _gb(value: float) -> str:
    return f"{value:g} GB"


def _vcpus(value: float) -> str:
    return f"{value:g} vCPU" + ("" if value == 1 else "s")


def _size(resource: Resource, value: float) -> str:
    return _vcpus(value) if resource == "cpu" else _gb(value)


def _step(rule: BoundRule, policy: MigratePolicy, current: float) -> float:
    return current if policy.stepAuto or rule.step is None else rule.step


def _ratio(resource: Resource, point: UtilizationPoint) -> float:
    return point.cpuDemandRatio if resource == "cpu" else point.memoryRatio


def _peak_ratio(resource: Resource, point: UtilizationPoint) -> float:
    return point.cpuDemandRatio if resource == "cpu" else point.memoryPeakRatio


def _up(resource: Resource, rule: BoundRule, policy: MigratePolicy, current: float,
        why: str) -> _Change | None:
    low = current + _step(rule, policy, current)
    if resource == "cpu":
        low = math.ceil(low)
    if rule.limit is not None:
        low = min(low, rule.limit)
    if low <= current:
        return None  # at its limit already
    high = rule.limit if rule.limit is not None else math.inf
    return _Change(resource, "up", low, high,
                   f"{why}: {_size(resource, current)} → {_size(resource, low)}")


def _down(resource: Resource, rule: BoundRule, policy: MigratePolicy, current: float,
          needed: float, why: str) -> _Change | None:
    step = _step(rule, policy, current)
    high = current - step if step < current else current / 2
    if resource == "cpu":
        high = math.floor(high)
    low = max(needed, rule.lowerLimit or 0.0, _SMALLEST[resource])
    # Whole vCPUs; memory to the hundredth of a GB, rounded up so the peak still fits.
    low = math.ceil(low - 1e-9) if resource == "cpu" else math.ceil(low * 100 - 1e-9) / 100
    high = max(high, low)
    if high >= current:
        return None  # at its lower limit already, or the job needs what it has
    return _Change(resource, "down", low, high,
                   f"{why}: {_size(resource, current)} → {_size(resource, high)}")


def _rule_change(resource: Resource, rule: BoundRule, policy: MigratePolicy,
                 points: Sequence[UtilizationPoint], current: float) -> _Change | None:
    name = "cpu" if resource == "cpu" else "mem"
    above = _held(points, rule.upperBoundDuration,
                  lambda p: _ratio(resource, p) > rule.upperBoundRatio)
    if above:
        mean = sum(_ratio(resource, p) for p in above) / len(above)
        return _up(resource, rule, policy, current,
                   f"{name} {mean:.0f}% > {rule.upperBoundRatio:g}% for "
                   f"{rule.upperBoundDuration} s")
    below = _held(points, rule.lowerBoundDuration,
                  lambda p: _ratio(resource, p) < rule.lowerBoundRatio)
    if below:
        mean = sum(_ratio(resource, p) for p in below) / len(below)
        # What the job used at its busiest in that window, in vCPUs or GB, kept under the
        # upper bound on the smaller size.
        peak = max(_peak_ratio(resource, p) for p in below) / 100 * current
        needed = peak / (rule.upperBoundRatio / 100)
        return _down(resource, rule, policy, current, needed,
                     f"{name} {mean:.0f}% < {rule.lowerBoundRatio:g}% for "
                     f"{rule.lowerBoundDuration} s")
    return None


def _evade(policy: MigratePolicy, latest: UtilizationPoint, before: UtilizationPoint | None,
           current_gib: float) -> _Change | None:
    if not policy.evadeOOM:
        return None
    if latest.memoryPeakRatio >= EVADE_RATIO:
        why = (f"evadeOOM: memory {latest.memoryPeakRatio:.0f}% of {_gb(current_gib)} "
               f"(≥ {EVADE_RATIO:g}%)")
    elif latest.swapBytes > 0:
        why = f"evadeOOM: the job swaps ({latest.swapBytes / 2**20:.0f} MiB)"
    elif latest.memoryPressure is not None and latest.memoryPressure >= EVADE_PRESSURE:
        why = f"evadeOOM: memory pressure {latest.memoryPressure:g}% (≥ {EVADE_PRESSURE:g}%)"
    elif latest.oomKills > (before.oomKills if before is not None else 0):
        why = "evadeOOM: the kernel killed a process of the job for memory"
    else:
        return None
    return _up("mem", policy.mem, policy, current_gib, why)


def _cooling(last: LastMove | None, change: _Change, now: datetime) -> bool:
    if last is None:
        return False
    went = last.cpu if change.resource == "cpu" else last.mem
    moved_at = instant(last.time)
    if went is None or went == change.direction or moved_at is None:
        return False
    return (now - moved_at).total_seconds() < COOLDOWN_SECONDS


def _fits(offer: Offer, cpu: Range, mem: Range, gpus: int) -> bool:
    return (cpu.min <= offer.vcpus <= cpu.max and mem.min <= offer.memory_gib <= mem.max
            and ARCHITECTURE in offer.architectures
            and (offer.gpus >= gpus if gpus else offer.gpus == 0))


def _ranges(changes: Sequence[_Change], policy: MigratePolicy, current: Offer,
            offers: Sequence[Offer]) -> tuple[CpuRange, Range]:
    """The new ranges: a resource that moves gets its change's; one that does not keeps at
    least what the job has now, and may get more where the type with the new size has more
    (a 4-vCPU type has more memory than a 2-vCPU one), within its limits. Placement then
    takes the cheapest type in the ranges."""
    largest_cpu = max((o.vcpus for o in offers), default=current.vcpus)
    largest_mem = max((o.memory_gib for o in offers), default=current.memory_gib)
    bounds: dict[Resource, tuple[float, float]] = {
        "cpu": (current.vcpus, largest_cpu),
        "mem": (current.memory_gib, largest_mem),
    }
    for change in changes:
        bounds[change.resource] = (change.low, change.high)
    cpu_low, cpu_high = bounds["cpu"]
    mem_low, mem_high = bounds["mem"]
    if policy.cpu.limit is not None:
        cpu_high = min(cpu_high, policy.cpu.limit)
    if policy.mem.limit is not None:
        mem_high = min(mem_high, policy.mem.limit)
    cpu_high, mem_high = min(cpu_high, largest_cpu), min(mem_high, largest_mem)
    return (CpuRange(min=int(cpu_low), max=max(int(cpu_low), int(cpu_high))),
            Range(min=mem_low, max=max(mem_low, mem_high)))


def decide(policy: MigratePolicy | None, points: Sequence[UtilizationPoint], current: Offer,
           offers: Sequence[Offer], *,
           last_move: LastMove | None = None, gpus: int = 0) -> Move | None:
    """Whether the job should move, and to what sizes. `points` are its samples on the
    instance it runs on now (of type `current`), oldest first; `last_move` is WaveRider's
    latest move of the job. None: stay."""
    if policy is None or policy.disable or not points:
        return None
    latest = points[-1]
    now = instant(latest.time)
    if now is None:
        return None
    changes: list[_Change] = []
    evade = None if policy.mem.disable else _evade(
        policy, latest, points[-2] if len(points) > 1 else None, current.memory_gib)
    if evade is not None:
        changes.append(evade)
    if evade is None and not policy.mem.disable:
        change = _rule_change("mem", policy.mem, policy, points, current.memory_gib)
        if change is not None and not _cooling(last_move, change, now):
            changes.append(change)
    if not policy.cpu.disable:
        change = _rule_change("cpu", policy.cpu, policy, points, current.vcpus)
        if change is not None and not _cooling(last_move, change, now):
            changes.append(change)
    if not changes:
        return None
    cpu, mem = _ranges(changes, policy, current, offers)
    if not any(_fits(o, cpu, mem, gpus) for o in offers):
        # Nothing EC2 offers has those sizes within the limits: a down move that cannot be
        # made is dropped, so an up move alone may still be possible.
        ups = [c for c in changes if c.direction == "up"]
        if not ups or len(ups) == len(changes):
            return None
        changes = ups
        cpu, mem = _ranges(changes, policy, current, offers)
        if not any(_fits(o, cpu, mem, gpus) for o in offers):
            return None
    return Move(cpu=cpu, mem=mem, reason="; ".join(c.reason for c in changes),
                directions={c.resource: c.direction for c in changes},
                evade_oom=evade is not None)
