"""Data volumes in MMCloud's spellings: a new block volume, an S3 prefix or an NFS export."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from chalicelib.wire.specs import Spec, parse_options

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
