"""What jobs used and cost: a job's cost against On-demand (`float show`), and a month's
core-hours and spend by user (`float report usage`, `float report cost`). USD amounts are
decimal strings; MMCloud's own `cost` line reads "0.0017 USD"."""

from __future__ import annotations

from decimal import Decimal

from chalicelib.wire.base import View


def usd(amount: Decimal | int) -> str:
    """An amount as people write it: 0.00000011 USD, never 1.1E-7 USD."""
    return f"{Decimal(amount):f} USD"


class Savings(View):
    """What the job's instances would have cost On-demand, and what Spot saved of that."""

    onDemandCost: str
    savings: str
    # Savings in % of the On-demand cost (None when that is zero).
    savingsPercent: float | None = None
    # Instance-seconds with no known price, left out of both figures.
    unpricedSeconds: int = 0


class UserUsage(View):
    user: str
    coreHours: str
    instanceSeconds: int
    jobs: int
    cost: str | None = None
    onDemandCost: str | None = None
    savings: str | None = None
    unpricedSeconds: int | None = None


class UsageReport(View):
    """A month's core-hours by user (and with `float report cost`, its spend), the instances
    still running counted up to now."""

    month: str
    users: list[UserUsage]
    coreHours: str
    cost: str | None = None
    onDemandCost: str | None = None
    savings: str | None = None
