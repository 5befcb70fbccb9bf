"""The Application Library: named container images, public or private.

A private image's registry username and token live only in AWS Secrets Manager; the table
holds the secret's id, and no view, log line or response ever carries the credentials.
"""

from __future__ import annotations

import json
import secrets

from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound
from chalicelib.runtime import Runtime
from chalicelib.store import ImageRecord, Store
from chalicelib.wire.api import ImageRequest, ImageUpdate, ImageView, Page
from chalicelib.wire.base import IMAGE_REFERENCE


def _view(image: ImageRecord) -> ImageView:
    return ImageView(
        name=image.name,
        uri=image.uri,
        private=image.private,
        owner=image.owner,
        createTime=image.createTime,
        updateTime=image.updateTime,
    )


def _check_uri(uri: str) -> str:
    if not IMAGE_REFERENCE.match(uri):
        raise BadRequest(f"{uri!r} is not an image reference such as docker.io/library/ubuntu:22.04",
                         field="uri")
    return uri


def _create_secret(runtime: Runtime, name: str, username: str, token: str) -> str:
    # A fresh suffix per secret: a name is never reused while a deleted secret is pending.
    secret_name = f"{runtime.config.secret_prefix}images/{name}-{secrets.token_hex(4)}"
    response = runtime.secrets.create_secret(
        Name=secret_name,
        SecretString=json.dumps({"username": username, "token": token}),
        Description=f"Registry credentials of Application Library image {name}",
    )
    return str(response["ARN"])


def _delete_secret(runtime: Runtime, secret_id: str) -> None:
    runtime.secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)


def add(runtime: Runtime, store: Store, principal: Principal, request: ImageRequest) -> ImageView:
    _check_uri(request.uri)
    if store.get_image(request.name) is not None:
        # Checked first so that a duplicate name does not create a secret; the conditional
        # write below still guards against a concurrent add.
        raise Conflict(f"image {request.name} is already in the Application Library")
    now = runtime.now_iso()
    secret_id = None
    if request.username is not None and request.token is not None:
        secret_id = _create_secret(runtime, request.name, request.username, request.token)
    image = ImageRecord(
        name=request.name,
        uri=request.uri,
        owner=principal.username,
        private=secret_id is not None,
        secretId=secret_id,
        createTime=now,
        updateTime=now,
    )
    try:
        store.create_image(image)
    except Exception:
        if secret_id is not None:
            _delete_secret(runtime, secret_id)
        raise
    return _view(image)


def get(store: Store, name: str) -> ImageView:
    return _view(_require(store, name))


def list_images(store: Store, limit: int, token: str | None) -> Page[ImageView]:
    images, next_token = store.list_images(limit, token)
    return Page[ImageView](items=[_view(i) for i in images], nextToken=next_token)


def update(
    runtime: Runtime, store: Store, principal: Principal, name: str, request: ImageUpdate
) -> ImageView:
    current = _require(store, name)
    _require_owner(principal, current, "update")
    new_secret = None
    stale_secret = None
    if request.username is not None and request.token is not None:
        new_secret = _create_secret(runtime, name, request.username, request.token)
        stale_secret = current.secretId
    elif request.public:
        stale_secret = current.secretId
    secret_id = new_secret if new_secret else (None if request.public else current.secretId)
    updated = current.model_copy(
        update={
            "uri": _check_uri(request.uri) if request.uri is not None else current.uri,
            "secretId": secret_id,
            "private": secret_id is not None,
            "updateTime": runtime.now_iso(),
        }
    )
    try:
        store.replace_image(updated, expected_update_time=current.updateTime)
    except Exception:
        if new_secret is not None:
            _delete_secret(runtime, new_secret)
        raise
    # The entry no longer points at the old secret, so removing it cannot break a reader.
    if stale_secret is not None:
        _delete_secret(runtime, stale_secret)
    return _view(updated)


def delete(runtime: Runtime, store: Store, principal: Principal, name: str) -> ImageView:
    current = _require(store, name)
    _require_owner(principal, current, "delete")
    removed = store.delete_image(name)
    if removed.secretId is not None:
        _delete_secret(runtime, removed.secretId)
    return _view(removed)


def resolve(store: Store, image: str) -> str:
    """The registry URI a job's `image` names: a library entry's URI, or the reference itself."""
    entry = store.get_image(image)
    if entry is not None:
        return entry.uri
    if ("/" in image or ":" in image) and IMAGE_REFERENCE.match(image):
        return image
    raise BadRequest(
        f"image {image!r} is neither in the Application Library nor a registry reference",
        field="image",
    )


def _require(store: Store, name: str) -> ImageRecord:
    image = store.get_image(name)
    if image is None:
        raise NotFound(f"image {name} is not in the Application Library")
    return image


def _require_owner(principal: Principal, image: ImageRecord, action: str) -> None:
    if not principal.may_touch(image.owner):
        raise Forbidden(f"image {image.name} belongs to {image.owner}; only they or an admin may {action} it")
