"""Resource and policy specs in MMCloud's spellings, parsed from their CLI strings or from JSON.

Each spec accepts what `float submit` users type (`-c 2:8`, `--vmPolicy [spotFirst=true]`,
`--dataVolume [size=60]:/mnt/x`) as well as its structured JSON form, and always serialises
to the structured form.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Spec(BaseModel):
    """A spec: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# Custom tags of a job's instances: EC2 allows 50 a resource, and OpenFloat adds its own.
MAX_TAGS = 40


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Custom tags end up on EC2 instances, so EC2's tag rules apply."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags given; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        if not key or len(key) > 128 or key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key!r} must be 1-128 characters, not starting aws:")
        if len(value) > 256:
            raise ValueError(f"tag {key!r} has a value longer than 256 characters")
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

    min: float = Field(gt=0)
    max: float = Field(gt=0)

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

    min: int = Field(gt=0)  # type: ignore[assignment]
    max: int = Field(gt=0)  # type: ignore[assignment]

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
                    if not raw.isdigit():
                        raise ValueError(f"retryLimit must be a whole number, got {raw!r}")
                    parsed[key] = int(raw)
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
    step: float | None = Field(default=None, gt=0)
    limit: float | None = Field(default=None, gt=0)
    lowerLimit: float | None = Field(default=None, gt=0)
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


MOUNT_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
_SCHEMES = {"s3": "s3://", "nfs": "nfs://"}
# An S3 endpoint: `host`, `host:port`, or either with http:// or https:// (https when none).
_ENDPOINT = re.compile(r"^(?:(https?)://)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?$")
# S3 keys as typed in `[accesskey=...,secret=...,token=...]`: no separator of the option list.
_KEY = re.compile(r"^[^\s,\[\]]+$")
_KEY_OPTIONS = {"accesskey": "accessKey", "secret": "secretKey", "token": "sessionToken"}
CREDENTIALS_STORED = "stored"


def endpoint_url(endpoint: str) -> str:
    """The URL of an S3 endpoint as written in a volume: https:// unless it says http://."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


class DataVolume(Spec):
    """A volume mounted into the job: a new block volume, an S3 prefix or an NFS export.

    Written `[size=60]:/mnt/x`, `[mode=rw]s3://bucket/prefix:/mnt/data`,
    `[mode=rw,accesskey=AK,secret=SK,token=T,endpoint=https://host:9000]s3://bucket:/mnt/b` or
    `nfs://host/export:/mnt/shared`. Volumes stay outside checkpoints and are re-mounted
    wherever the job moves.

    S3 keys are accepted on the way in only: they are never serialised (the control plane moves
    them to Secrets Manager at submit) and a stored volume says `credentials: stored` instead.
    """

    kind: Literal["block", "s3", "nfs"]
    mountPath: str
    source: str | None = None
    size: int | None = Field(default=None, ge=1, le=16384)
    mode: Literal["r", "rw"] = "rw"
    endpoint: str | None = None
    # `stored`: the volume's S3 keys are held in Secrets Manager for the job.
    credentials: Literal["stored"] | None = None
    accessKey: str | None = Field(default=None, exclude=True, repr=False, max_length=256)
    secretKey: str | None = Field(default=None, exclude=True, repr=False, max_length=1024)
    sessionToken: str | None = Field(default=None, exclude=True, repr=False, max_length=4096)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        options: dict[str, str] = {}
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                raise ValueError("unbalanced brackets in the dataVolume options")
            options = parse_options(text[: close + 1])
            text = text[close + 1 :]
        source, sep, mount = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected SOURCE:/mount/path, got {_without_keys(value)!r}")
        unknown = set(options) - {"size", "mode", "endpoint", "credentials", *_KEY_OPTIONS}
        if unknown:
            raise ValueError(f"unknown dataVolume option {sorted(unknown)[0]!r} in "
                             f"{_without_keys(value)!r}")
        parsed: dict[str, Any] = {"mountPath": mount}
        for key, raw in options.items():
            parsed[_KEY_OPTIONS.get(key, key)] = raw
        if not source:
            parsed["kind"] = "block"
        else:
            kind = next((k for k, p in _SCHEMES.items() if source.startswith(p)), None)
            if kind is None:
                raise ValueError(f"unsupported volume source {source!r}: use s3:// or nfs://")
            parsed.update(kind=kind, source=source)
        return parsed

    @model_validator(mode="after")
    def _consistent(self) -> DataVolume:
        if not MOUNT_PATH.match(self.mountPath) or self.mountPath == "/" or "/../" in (
            self.mountPath + "/"
        ):
            raise ValueError(f"mount path must be an absolute path below /, got {self.mountPath!r}")
        if self.kind != "s3" and (self.endpoint is not None or self.has_keys
                                  or self.credentials is not None):
            raise ValueError("endpoint, accesskey, secret and token go with s3:// volumes")
        if self.kind == "block":
            if self.size is None:
                raise ValueError("a new block volume needs [size=GB]")
        else:
            if self.size is not None:
                raise ValueError(f"size goes with new block volumes, not {self.kind} volumes")
            prefix = _SCHEMES[self.kind]
            if not self.source or len(self.source) <= len(prefix):
                raise ValueError(f"{self.kind} volume source is empty")
        if self.endpoint is not None and not _ENDPOINT.match(self.endpoint):
            raise ValueError(f"endpoint {self.endpoint!r} is not host[:port], "
                             "https://host[:port] or http://host[:port]")
        if self.has_keys:
            if self.accessKey is None or self.secretKey is None:
                raise ValueError("S3 keys need both accesskey= and secret= (token= is optional)")
            for name, key in (("accesskey", self.accessKey), ("secret", self.secretKey),
                              ("token", self.sessionToken)):
                if key is not None and not _KEY.match(key):
                    raise ValueError(f"{name} is empty or holds a space, comma or bracket")
            if self.credentials is not None:
                raise ValueError("give the keys (accesskey=, secret=) or credentials, not both")
        return self

    @property
    def has_keys(self) -> bool:
        return any(k is not None for k in (self.accessKey, self.secretKey, self.sessionToken))

    def keys(self) -> dict[str, str]:
        """The volume's S3 keys as Secrets Manager keeps them (empty when it has none)."""
        found = {"accessKey": self.accessKey, "secretKey": self.secretKey,
                 "sessionToken": self.sessionToken}
        return {name: key for name, key in found.items() if key is not None}

    def __str__(self) -> str:
        options = [f"size={self.size}"] if self.size else []
        if self.kind != "block":
            options.append(f"mode={self.mode}")
        if self.endpoint:
            options.append(f"endpoint={self.endpoint}")
        if self.credentials or self.has_keys:
            options.append(f"credentials={CREDENTIALS_STORED}")
        return f"[{','.join(options)}]{self.source or ''}:{self.mountPath}"


def _without_keys(text: str) -> str:
    """A volume as typed, with its keys masked, for an error message."""
    return re.sub(r"((?:accesskey|secret|token)=)[^,\]]*", r"\1****", text)
