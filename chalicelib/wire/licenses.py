"""Licenses: what a license says (its terms), the signed document an issuer hands out, and
what `float license info` shows of the one applied.

A document is `{"license": TERMS, "signature": SIG}`: SIG is the issuer's Ed25519 signature of
the terms' canonical JSON (keys sorted, no spaces, UTF-8), in base64. The OpCenter checks it
against the issuer's public key in its configuration; it never holds the private key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from chalicelib.wire.base import Body, View

Plan = Literal["pro", "enterprise"]
LICENSE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _utc(text: str, field: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field} must be an ISO 8601 time such as 2026-12-01T00:00:00Z, "
                         f"not {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field} must name its time zone (end it with Z)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LicenseTerms(Body):
    """What the issuer grants: to whom, on which plan, from when to when, for which OpCenter.
    Pro is charged by the vCPU core-hours used each month, up to a quota; Enterprise by a
    contract, with no quota."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=LICENSE_ID_PATTERN)
    customer: str = Field(min_length=1, max_length=200)
    plan: Plan
    # Pro: core-hours a calendar month (UTC) may use, and what each costs, in USD.
    coreHourQuota: int | None = Field(default=None, gt=0)
    pricePerCoreHour: str | None = None
    # Enterprise: the contract it is sold under.
    contract: str | None = Field(default=None, min_length=1, max_length=200)
    start: str
    end: str
    # The OpCenter it may be applied to (`float license info` shows an OpCenter's id).
    opcenter: str = Field(min_length=1, max_length=300)
    issued: str

    @field_validator("start", "end", "issued")
    @classmethod
    def _times(cls, value: str, info: Any) -> str:
        return _utc(value, info.field_name)

    @field_validator("pricePerCoreHour")
    @classmethod
    def _price(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            price = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"pricePerCoreHour must be a decimal number of USD, not "
                             f"{value!r}") from None
        if not price.is_finite() or price < 0:
            raise ValueError(f"pricePerCoreHour must be 0 or more USD, not {value!r}")
        return value

    @model_validator(mode="after")
    def _plan_fields(self) -> LicenseTerms:
        if self.plan == "pro":
            if self.coreHourQuota is None or self.pricePerCoreHour is None:
                raise ValueError("a pro license names its coreHourQuota and pricePerCoreHour")
            if self.contract is not None:
                raise ValueError("a pro license has no contract; that is an enterprise license")
        else:
            if self.contract is None:
                raise ValueError("an enterprise license names its contract")
            if self.coreHourQuota is not None or self.pricePerCoreHour is not None:
                raise ValueError("an enterprise license has no coreHourQuota or "
                                 "pricePerCoreHour; that is a pro license")
        if self.end <= self.start:
            raise ValueError(f"the license ends ({self.end}) before it starts ({self.start})")
        return self


def canonical(terms: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the terms exactly as the document carries them."""
    return json.dumps(terms, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class LicenseDocument(Body):
    """A signed license, as `float license apply FILE` sends the file."""

    license: dict[str, Any]
    signature: str = Field(min_length=1, max_length=200)


LicenseStatus = Literal["valid", "expired", "not yet valid", "quota used up"]


class LicenseView(View):
    """`float license info`: this OpCenter's id and, once one is applied, its license with
    what this month has used of it."""

    opcenter: str
    # None until a license is applied.
    id: str | None = None
    customer: str | None = None
    plan: Plan | None = None
    contract: str | None = None
    start: str | None = None
    end: str | None = None
    appliedTime: str | None = None
    appliedBy: str | None = None
    status: LicenseStatus | Literal["none"] = "none"
    # What new jobs need before they start, when they cannot now.
    hold: str | None = None
    # The calendar month (UTC) the figures are for, and its core-hours used and left (pro).
    month: str
    coreHoursUsed: str
    coreHourQuota: int | None = None
    coreHoursLeft: str | None = None
    pricePerCoreHour: str | None = None

