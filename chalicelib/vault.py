"""Users' secrets (`float secret set|get|unset|ls`): named values each user keeps for their
jobs, such as the AWS keys nf-float hands its tasks. They live in AWS Secrets Manager only,
one secret per name under the user's own prefix; no table holds a name or a value.

A user reaches only their own secrets, an admin too; a job's own token may read (never set,
unset or list) its owner's secrets, which is how a job script runs `float secret get NAME`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.auth import Principal
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.runtime import Runtime
from chalicelib.wire.api import Page
from chalicelib.wire.vault import SECRET_NAME_PATTERN, SecretRequest, SecretValue, SecretView

_MAX_LISTED = 100


def _prefix(runtime: Runtime, owner: str) -> str:
    return f"{runtime.config.secret_prefix}users/{owner}/secrets/"


def _check_name(name: str) -> str:
    if not re.match(SECRET_NAME_PATTERN, name):
        raise BadRequest(f"{name!r} is not a secret name: use 1-128 letters, digits, '_', '-' "
                         "or '.'", field="name")
    return name


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _time(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def put(runtime: Runtime, principal: Principal, name: str, request: SecretRequest) -> SecretView:
    """Keep the value under the name, replacing the value it had (nf-float sets its keys again
    at every run)."""
    secret_id = _prefix(runtime, principal.username) + _check_name(name)
    client = runtime.secrets
    try:
        client.create_secret(Name=secret_id, SecretString=request.value,
                             Description=f"OpenFloat secret {name} of user {principal.username}")
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=secret_id, SecretString=request.value)
    except ClientError as error:
        if _code(error) == "InvalidRequestException":
            # Secrets Manager is still deleting a secret of that name.
            raise Conflict(f"secret {name} is being removed; set it again in a few seconds") from None
        raise
    return SecretView(name=name, updateTime=_time(runtime.clock()))


def get(runtime: Runtime, principal: Principal, name: str) -> SecretValue:
    secret_id = _prefix(runtime, principal.username) + _check_name(name)
    client = runtime.secrets
    try:
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        raise NotFound(f"secret {name} does not exist") from None
    except ClientError as error:
        if _code(error) == "InvalidRequestException":  # deleted, not yet gone
            raise NotFound(f"secret {name} does not exist") from None
        raise
    return SecretValue(name=name, value=str(value))


def delete(runtime: Runtime, principal: Principal, name: str) -> SecretView:
    secret_id = _prefix(runtime, principal.username) + _check_name(name)
    client = runtime.secrets
    try:
        # A forced delete of a secret that does not exist succeeds: ask first.
        client.describe_secret(SecretId=secret_id)
        client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    except client.exceptions.ResourceNotFoundException:
        raise NotFound(f"secret {name} does not exist") from None
    except ClientError as error:
        if _code(error) == "InvalidRequestException":
            raise NotFound(f"secret {name} does not exist") from None
        raise
    return SecretView(name=name)


def list_names(runtime: Runtime, principal: Principal, limit: int,
               token: str | None) -> Page[SecretView]:
    """The caller's secrets by name, with when each was last set; never a value."""
    prefix = _prefix(runtime, principal.username)
    # Secrets Manager hands out at most 100 a page; the caller follows nextToken for more.
    request: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix]}],
                               "MaxResults": min(limit, _MAX_LISTED)}
    if token:
        request["NextToken"] = token
    client = runtime.secrets
    try:
        response = client.list_secrets(**request)
    except ClientError as error:
        if token and _code(error) in ("InvalidNextTokenException", "InvalidParameterException"):
            raise BadRequest("nextToken is not a token this API handed out",
                             field="nextToken") from None
        raise
    items = [
        SecretView(name=entry["Name"][len(prefix):],
                   updateTime=_time(entry.get("LastChangedDate") or entry.get("CreatedDate")))
        # Secrets Manager's name filter ignores case: only this user's own prefix counts.
        for entry in response.get("SecretList", [])
        if entry["Name"].startswith(prefix) and "DeletedDate" not in entry
    ]
    return Page[SecretView](items=sorted(items, key=lambda s: s.name),
                            nextToken=response.get("NextToken"))


def forget_owner(runtime: Runtime, owner: str) -> None:
    """Delete every secret of a user who is being deleted."""
    me = Principal(username=owner, role="user")
    token: str | None = None
    while True:
        page = list_names(runtime, me, 100, token)
        for secret in page.items:
            runtime.secrets.delete_secret(SecretId=_prefix(runtime, owner) + secret.name,
                                          ForceDeleteWithoutRecovery=True)
        if not page.nextToken:
            return
        token = page.nextToken
