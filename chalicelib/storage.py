"""Named storage (`float storage register|list|remove`, `float submit --storage NAME`): an S3
prefix or NFS export a user registers once and mounts into jobs by name. Each user has their
own names; the table holds where it is, Secrets Manager its S3 keys.

`--storage NAME` is resolved when the job is submitted: the job gets its own copy of the volume
and keys, so removing a storage (allowed at any time) changes no job already submitted.
"""

from __future__ import annotations

import json
import secrets

from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.runtime import Runtime
from chalicelib.store import StorageRecord, Store
from chalicelib.wire.api import Page
from chalicelib.wire.datavolumes import CREDENTIALS_STORED, DataVolume
from chalicelib.wire.vault import StorageRequest, StorageView


def _view(record: StorageRecord) -> StorageView:
    return StorageView(name=record.name, owner=record.owner, kind=record.kind,
                       source=record.source, mountPath=record.mountPath, mode=record.mode,
                       endpoint=record.endpoint,
                       credentials=CREDENTIALS_STORED if record.secretId else None,
                       createTime=record.createTime)


def register(runtime: Runtime, store: Store, principal: Principal,
             request: StorageRequest) -> StorageView:
    volume = request.volume()
    owner = principal.username
    if store.get_storage(owner, request.name) is not None:
        # Checked first so a duplicate creates no secret; the conditional write still guards.
        raise Conflict(f"storage {request.name} is already registered; remove it first")
    secret_id = None
    if volume.has_keys:
        # A fresh suffix per secret: a name is never reused while a deleted one is pending.
        secret_id = str(runtime.secrets.create_secret(
            Name=f"{runtime.config.secret_prefix}users/{owner}/storage/{request.name}-"
                 f"{secrets.token_hex(4)}",
            SecretString=json.dumps(volume.keys()),
            Description=f"S3 keys of OpenFloat storage {request.name} of user {owner}")["ARN"])
    record = StorageRecord(owner=owner, name=request.name, kind=volume.kind,
                           source=volume.source or "", mountPath=volume.mountPath,
                           mode=volume.mode, endpoint=volume.endpoint, secretId=secret_id,
                           createTime=runtime.now_iso())
    try:
        store.create_storage(record)
    except Exception:
        if secret_id is not None:
            runtime.secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        raise
    return _view(record)


def list_storage(store: Store, principal: Principal, limit: int,
                 token: str | None) -> Page[StorageView]:
    records, next_token = store.list_storage(principal.username, limit, token)
    return Page[StorageView](items=[_view(r) for r in records], nextToken=next_token)


def remove(runtime: Runtime, store: Store, principal: Principal, name: str) -> StorageView:
    """Forget the storage and its keys. Jobs submitted with it keep their own copy."""
    try:
        removed = store.delete_storage(principal.username, name)
    except NotFound:
        raise NotFound(f"storage {name} is not registered") from None
    if removed.secretId is not None:
        runtime.secrets.delete_secret(SecretId=removed.secretId, ForceDeleteWithoutRecovery=True)
    return _view(removed)


def as_volume(runtime: Runtime, store: Store, owner: str, name: str) -> DataVolume:
    """The data volume `--storage NAME` stands for, with its keys; BadRequest naming an unknown
    storage."""
    record = store.get_storage(owner, name)
    if record is None:
        raise BadRequest(f"storage {name} is not registered (see float storage list)",
                         field="storage")
    keys: dict[str, str] = {}
    if record.secretId is not None:
        keys = json.loads(runtime.secrets.get_secret_value(SecretId=record.secretId)["SecretString"])
    return DataVolume.model_validate({
        "kind": record.kind, "mountPath": record.mountPath, "source": record.source,
        "mode": record.mode, "endpoint": record.endpoint, **keys})


def forget_owner(runtime: Runtime, store: Store, owner: str) -> None:
    """Remove every storage of a user who is being deleted, with its keys."""
    me = Principal(username=owner, role="user")
    while True:
        records, _ = store.list_storage(owner, 100, None)
        if not records:
            return
        for record in records:
            remove(runtime, store, me, record.name)
