"""Placement: which instance types can run a job, in what order to try them, and on which
market. Pure decisions; the EC2 calls that feed and carry them out live in `fleet`."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.wire.specs import CpuRange, Range, VmPolicy
from chalicelib.wire.tasks import Attempt, Market

# Types tried per round: enough to ride out one type's shortage, few enough to stay cheap.
TYPES_PER_ROUND = 3
# Checkpoints hold machine code: a job restores only on the architecture it was frozen on.
ARCHITECTURE = "x86_64"


@dataclass(frozen=True)
class Offer:
    """One instance type as EC2 describes it, with its current Spot price if known."""

    instance_type: str
    vcpus: int
    memory_gib: float
    architectures: tuple[str, ...]
    markets: tuple[Market, ...]
    spot_price: float | None = None
    gpus: int = 0


class NoCandidate(Exception):
    """No instance type satisfies the job's cpu, memory and instance type."""


def fits(offer: Offer, cpu: CpuRange, mem: Range, market: Market, gpus: int = 0) -> bool:
    """Within the job's ranges, on its market, with the GPUs it asks for: a job that asks for
    none is not placed on a GPU type, which costs several times as much."""
    return (
        cpu.min <= offer.vcpus <= cpu.max
        and mem.min <= offer.memory_gib <= mem.max
        and ARCHITECTURE in offer.architectures
        and market in offer.markets
        and (offer.gpus >= gpus if gpus else offer.gpus == 0)
    )


def candidates(offers: list[Offer], cpu: CpuRange, mem: Range, instance_type: str | None,
               market: Market, gpus: int = 0) -> list[Offer]:
    """The types to try on `market`, best first: cheapest Spot price, then fewest vCPUs and
    least memory (so a range is filled from its low end), then name for a stable order."""
    if instance_type is not None:
        chosen = [o for o in offers if o.instance_type == instance_type and market in o.markets
                  and o.gpus >= gpus]
        return chosen
    fitting = [o for o in offers if fits(o, cpu, mem, market, gpus)]
    unknown_price = float("inf")
    fitting.sort(key=lambda o: (
        (o.spot_price if o.spot_price is not None else unknown_price) if market == "spot" else 0,
        o.gpus, o.vcpus, o.memory_gib, o.instance_type))
    return fitting[:TYPES_PER_ROUND]


def _preferring(names: list[str], offers: list[Offer], prefer: str | None, market: Market,
                cpu: CpuRange, mem: Range, instance_type: str | None, gpus: int) -> list[str]:
    """`names` with `prefer` first, when that type may serve the job on `market`."""
    if prefer is None or (instance_type is not None and prefer != instance_type):
        return names
    usable = any(o.instance_type == prefer and o.gpus >= gpus and market in o.markets
                 and (instance_type is not None or fits(o, cpu, mem, market, gpus))
                 for o in offers)
    if not usable:
        return names
    return [prefer] + [n for n in names if n != prefer][:TYPES_PER_ROUND - 1]


def launch_plan(offers: list[Offer], cpu: CpuRange, mem: Range, instance_type: str | None,
                policy: VmPolicy, *, prefer: str | None = None,
                moving: bool = False, gpus: int = 0) -> list[Attempt]:
    """Every launch the job may try, in order, per its vmPolicy.

    A Spot round is one launch over every Spot candidate, EC2 choosing among them; an
    On-demand fallback tries its candidates one by one. spotOnly: one Spot round. onDemand:
    the On-demand candidates. spotFirst: `retryLimit` Spot rounds, `retryInterval` seconds
    apart, then the On-demand candidates — the same sizes, so a fallback never asks for more
    than the job did.

    `prefer` (the type the job ran on) goes first when it still fits, in a launch of its own
    within the Spot round: a moved job lands on the same type when EC2 has one. A job
    `moving` is frozen while the plan runs, so it gets one Spot round with no waiting before
    the On-demand fallback.
    """
    spot = [o.instance_type for o in candidates(offers, cpu, mem, instance_type, "spot", gpus)]
    on_demand = [o.instance_type
                 for o in candidates(offers, cpu, mem, instance_type, "on-demand", gpus)]
    spot = _preferring(spot, offers, prefer, "spot", cpu, mem, instance_type, gpus)
    on_demand = _preferring(on_demand, offers, prefer, "on-demand", cpu, mem, instance_type, gpus)
    # A Spot round gives EC2 every candidate at once; a preferred type is asked for alone
    # first, so EC2 picks another only when it has none of it.
    spot_round = [types for types in ([spot[:1], spot[1:]] if spot[:1] == [prefer] else [spot])
                  if types]
    plan: list[Attempt] = []
    if policy.onDemand:
        plan = [Attempt(instanceTypes=[t], market="on-demand") for t in on_demand]
    elif policy.spotOnly:
        plan = [Attempt(instanceTypes=types, market="spot") for types in spot_round]
    else:
        rounds = 1 if moving else max(policy.retryLimit or 0, 1)
        for number in range(rounds):
            for index, types in enumerate(spot_round):
                wait = (policy.retryInterval or 0) if number > 0 and index == 0 else 0
                plan.append(Attempt(instanceTypes=types, market="spot", waitSeconds=wait))
        plan += [Attempt(instanceTypes=[t], market="on-demand") for t in on_demand]
    if not plan:
        wanted = f"instance type {instance_type}" if instance_type else f"{cpu} vCPUs and {mem} GiB"
        if gpus:
            wanted += f" with {gpus} GPU{'s' if gpus > 1 else ''}"
        raise NoCandidate(f"no {ARCHITECTURE} instance type offers {wanted} on the markets "
                          "the job's vmPolicy allows")
    return plan
