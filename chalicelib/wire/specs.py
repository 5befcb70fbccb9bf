"""Resource and policy specs in MMCloud's spellings, parsed from their CLI strings or from JSON.

Each spec accepts what `float submit` users type (`-c 2:8`, `--vmPolicy [spotFirst=true]`,
`--dataVolume [size=60]:/mnt/x`) as well as its structured JSON form, and always serialises
to the structured form.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chalicelib.wire.base import control_character, parse_whole

_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration of a job needs more than ten years; a longer one is a typo or an attack.
MAX_DURATION = 3650 * 86400
# The largest EC2 instances have 896 vCPUs and 32 TiB of memory.
MAX_CPUS = 1024
MAX_MEMORY_GB = 32768


class Spec(BaseModel):
    """A spec: unknown keys are errors, never silently dropped; numbers are finite."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


# Custom tags of a job's instances: EC2 allows 50 a resource, and OpenFloat adds its own.
MAX_TAGS = 40


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Custom tags end up on EC2 instances, so EC2's tag rules apply: printable UTF-8, keys
    1-128 characters not starting aws:, values up to 256."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags given; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        if not key or len(key) > 128 or key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key[:130]!r} must be 1-128 characters, not starting aws:")
        if len(value) > 256:
            raise ValueError(f"tag {key!r} has a value longer than 256 characters")
        for what, text in (("key", key), ("value", value)):
            found = control_character(text)
            if found:
                raise ValueError(f"tag {what} {key!r} holds the control character {found}")
    return tags


def parse_duration(value: Any) -> int:
    """Seconds from `900`, `"900s"`, `"15m"`, `"1h"` or `"1d"`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 900s or 15m, got {value!r}")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value).strip())
        if not match:
            raise ValueError(f"expected a duration such as 900s or 15m, got {value!r}")
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration can be at most 3650d, got {str(value)[:40]!r}")
    return seconds


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_options(text: str) -> dict[str, str]:
    """`[a=1,b.c=x]` (brackets optional) → {"a": "1", "b.c": "x"}."""
    body = text.strip()
    if body.startswith("["):
        if not body.endswith("]"):
            raise ValueError(f"unbalanced brackets in {text!r}")
        body = body[1:-1]
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {part!r}")
        if key.strip() in options:
            raise ValueError(f"{key.strip()!r} is given twice")
        options[key.strip()] = value.strip()
    return options


class Range(Spec):
    """An exact amount (min == max) or a MIN:MAX range; written `2` or `2:8`."""

    min: float = Field(gt=0, le=MAX_MEMORY_GB)
    max: float = Field(gt=0, le=MAX_MEMORY_GB)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number or MIN:MAX, got {value!r}")
        if isinstance(value, (int, float)):
            return {"min": value, "max": value}
        if isinstance(value, str):
            low, sep, high = value.strip().partition(":")
            try:
                low_value = float(low)
                high_value = float(high) if sep else low_value
            except ValueError:
                raise ValueError(f"expected a number or MIN:MAX, got {value!r}") from None
            return {"min": low_value, "max": high_value}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"MIN {self.min:g} is larger than MAX {self.max:g}")
        return self

    def __str__(self) -> str:
        return f"{self.min:g}" if self.min == self.max else f"{self.min:g}:{self.max:g}"


class CpuRange(Range):
    """vCPUs: whole numbers."""

    min: int = Field(gt=0, le=MAX_CPUS)  # type: ignore[assignment]
    max: int = Field(gt=0, le=MAX_CPUS)  # type: ignore[assignment]

    def __str__(self) -> str:
        return f"{self.min}" if self.min == self.max else f"{self.min}:{self.max}"


class VmPolicy(Spec):
    """Where a job's instances come from: Spot only, On-demand only, or Spot first.

    spotFirst tries Spot `retryLimit` times, `retryInterval` seconds apart, then moves to
    On-demand without failing the job. It is the default: a long pipeline should finish even
    when Spot capacity runs dry, which is what MMCloud users ask for most.
    """

    spotOnly: bool = False
    onDemand: bool = False
    spotFirst: bool = False
    retryLimit: int | None = Field(default=None, ge=0, le=1000)
    retryInterval: int | None = Field(default=None, ge=0, le=7 * 86400)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            options = parse_options(value)
            parsed: dict[str, Any] = {}
            for key, raw in options.items():
                if key in ("spotOnly", "onDemand", "spotFirst"):
                    parsed[key] = parse_bool(raw)
                elif key == "retryLimit":
                    limit = parse_whole(raw)
                    if limit is None:
                        raise ValueError(f"retryLimit must be a whole number, got {raw[:40]!r}")
                    parsed[key] = limit
                elif key == "retryInterval":
                    parsed[key] = parse_duration(raw)
                else:
                    raise ValueError(
                        f"unknown vmPolicy key {key!r} (known: spotOnly, onDemand, "
                        "spotFirst, retryLimit, retryInterval)"
                    )
            return parsed
        if isinstance(value, dict) and value.get("retryInterval") is not None:
            value = {**value, "retryInterval": parse_duration(value["retryInterval"])}
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> VmPolicy:
        chosen = [k for k in ("spotOnly", "onDemand", "spotFirst") if getattr(self, k)]
        if len(chosen) > 1:
            raise ValueError(f"choose one of spotOnly, onDemand, spotFirst, not {chosen}")
        if not chosen:
            if self.retryLimit is not None or self.retryInterval is not None:
                raise ValueError("retryLimit and retryInterval go with spotFirst=true")
            self.spotFirst = True
        if self.spotFirst:
            self.retryLimit = 3 if self.retryLimit is None else self.retryLimit
            self.retryInterval = 600 if self.retryInterval is None else self.retryInterval
        elif self.retryLimit is not None or self.retryInterval is not None:
            raise ValueError("retryLimit and retryInterval go with spotFirst=true")
        return self

    def __str__(self) -> str:
        if self.spotFirst:
            return (f"[spotFirst=true,retryLimit={self.retryLimit},"
                    f"retryInterval={self.retryInterval}s]")
        return "[spotOnly=true]" if self.spotOnly else "[onDemand=true]"


class BoundRule(Spec):
    """WaveRider rule for one resource: move up or down when utilization stays out of bounds."""

    upperBoundRatio: float = Field(default=90, gt=0, le=100)
    lowerBoundRatio: float = Field(default=5, ge=0, lt=100)
    upperBoundDuration: int = 30
    # Scaling down on a short dip costs a migration for little gain, so the default waits longer.
    lowerBoundDuration: int = 300
    step: float | None = Field(default=None, gt=0, le=MAX_MEMORY_GB)
    limit: float | None = Field(default=None, gt=0, le=MAX_MEMORY_GB)
    lowerLimit: float | None = Field(default=None, gt=0, le=MAX_MEMORY_GB)
    disable: bool = False

    @model_validator(mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = dict(value)
            for key in ("upperBoundDuration", "lowerBoundDuration"):
                if key in value:
                    value[key] = parse_duration(value[key])
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BoundRule:
        if self.lowerBoundRatio >= self.upperBoundRatio:
            raise ValueError(
                f"lowerBoundRatio {self.lowerBoundRatio:g} must be below "
                f"upperBoundRatio {self.upperBoundRatio:g}"
            )
        if self.limit is not None and self.lowerLimit is not None and self.lowerLimit > self.limit:
            raise ValueError(f"lowerLimit {self.lowerLimit:g} is above limit {self.limit:g}")
        return self


class MigratePolicy(Spec):
    """WaveRider: `[cpu.upperBoundRatio=80,mem.step=8,evadeOOM=true,...]`."""

    cpu: BoundRule = Field(default_factory=BoundRule)
    mem: BoundRule = Field(default_factory=BoundRule)
    stepAuto: bool = False
    evadeOOM: bool = False
    # `[disable=true]` keeps the policy but moves nothing; `[enable=true]` is its opposite.
    disable: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parsed: dict[str, Any] = {"cpu": {}, "mem": {}}
        for key, raw in parse_options(value).items():
            scope, dot, name = key.partition(".")
            if dot and scope in ("cpu", "mem") and name in BoundRule.model_fields:
                parsed[scope][name] = parse_bool(raw) if name == "disable" else raw
            elif not dot and key in ("stepAuto", "evadeOOM", "disable"):
                if key == "disable" and "disable" in parsed:
                    raise ValueError("give enable or disable, not both")
                parsed[key] = parse_bool(raw)
            elif not dot and key == "enable":
                if "disable" in parsed:
                    raise ValueError("give enable or disable, not both")
                parsed["disable"] = not parse_bool(raw)
            else:
                raise ValueError(
                    f"unknown migratePolicy key {key!r} (known: cpu.* and mem.* of "
                    f"{', '.join(BoundRule.model_fields)}; stepAuto; evadeOOM; enable; disable)"
                )
        return parsed

    def __str__(self) -> str:
        """The keys that differ from the defaults, as `--migratePolicy` takes them."""
        given, defaults = _flat(self.model_dump()), _flat(MigratePolicy().model_dump())
        return "[" + ",".join(f"{key}={_option(value)}" for key, value in given.items()
                              if defaults.get(key) != value) + "]"


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _option(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)
