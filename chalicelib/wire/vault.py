"""Request and response bodies of the API's per-user secrets (`float secret`) and named storage
(`float storage`). A secret's value is sent by its owner and read back only by name."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chalicelib.wire.datavolumes import DataVolume

# nf-float names secrets like AWS_ACCESS_KEY_ID_MY-RUN: letters, digits, `_`, `-` and `.`.
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
# Room for any key, token or small certificate; Secrets Manager itself holds up to 64 KiB.
MAX_SECRET_BYTES = 16 * 1024
STORAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRequest(_Body):
    """`PUT /v1/secrets/NAME`: the value to keep under that name (an existing one is replaced)."""

    value: str

    @model_validator(mode="after")
    def _size(self) -> SecretRequest:
        size = len(self.value.encode())
        if size == 0:
            raise ValueError("value: a secret cannot be empty")
        if size > MAX_SECRET_BYTES:
            raise ValueError(f"value: the secret is {size} bytes; the limit is {MAX_SECRET_BYTES}")
        return self


class SecretView(BaseModel):
    """A secret as listed: its name and when it was last set, never its value."""

    name: str
    updateTime: str | None = None


class SecretValue(BaseModel):
    """`GET /v1/secrets/NAME`: the value itself, for its owner or the owner's jobs."""

    name: str
    value: str


StorageKind = Literal["s3", "nfs"]


class StorageRequest(_Body):
    """`POST /v1/storage`: a named S3 prefix or NFS export a user mounts into jobs with
    `float submit --storage NAME`. S3 keys go to Secrets Manager, never into a table."""

    name: str = Field(pattern=STORAGE_NAME_PATTERN)
    kind: StorageKind
    mountPath: str
    # s3: `bucket` or `bucket/prefix`; nfs: `server` and the exported `path`.
    bucket: str | None = Field(default=None, min_length=1, max_length=1024)
    server: str | None = Field(default=None, min_length=1, max_length=255)
    path: str | None = Field(default=None, min_length=1, max_length=1024)
    mode: Literal["r", "rw"] = "rw"
    endpoint: str | None = None
    accessKey: str | None = None
    secretKey: str | None = None
    sessionToken: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> StorageRequest:
        if self.kind == "s3":
            if self.bucket is None:
                raise ValueError("bucket: s3 storage needs a bucket (bucket or bucket/prefix)")
            if self.server is not None or self.path is not None:
                raise ValueError("server and path go with nfs storage; s3 storage takes bucket")
        else:
            if self.server is None or self.path is None:
                raise ValueError("nfs storage needs server and path (the exported directory)")
            if self.bucket is not None:
                raise ValueError("bucket goes with s3 storage; nfs storage takes server and path")
            if not self.path.startswith("/"):
                raise ValueError(f"path: the export must be an absolute path, got {self.path!r}")
        try:
            self.volume()  # the volume it stands for must be one a job can mount
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    def volume(self) -> DataVolume:
        """The data volume this storage stands for, with its keys when it has them."""
        if self.kind == "s3":
            source = f"s3://{(self.bucket or '').strip('/')}"
        else:
            source = f"nfs://{self.server}{self.path}"
        return DataVolume.model_validate({
            "kind": self.kind, "mountPath": self.mountPath, "source": source, "mode": self.mode,
            "endpoint": self.endpoint, "accessKey": self.accessKey, "secretKey": self.secretKey,
            "sessionToken": self.sessionToken})


class StorageView(BaseModel):
    """A registered storage: what it mounts and where; its keys only as `credentials: stored`."""

    name: str
    owner: str
    kind: StorageKind
    source: str
    mountPath: str
    mode: Literal["r", "rw"]
    endpoint: str | None = None
    credentials: Literal["stored"] | None = None
    createTime: str
