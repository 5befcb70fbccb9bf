"""Who is calling: password hashes, bearer tokens, and the principal a request acts as."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, timedelta

import jwt

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import LoginView, Role
from chalicelib.wire.status import TERMINAL_STATUSES

# scrypt (RFC 7914) with n=2**15, r=8, p=1: about 32 MiB and a few tens of ms per check.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_TOKEN_ISSUER = "openfloat"
_SIGNING_KEY_CACHE = "token-signing-key"
# A job's own token outlives any job; it is refused as soon as its job has ended.
_JOB_TOKEN_DAYS = 366


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    encode = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            maxmem=_SCRYPT_MAXMEM, dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    # Set for a job's own token: the caller is that job, acting for its owner on itself only.
    job: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_touch(self, owner: str) -> bool:
        return self.is_admin or self.username == owner

    def may_touch_job(self, job_id: str, owner: str) -> bool:
        if self.job is not None:
            return self.job == job_id
        return self.may_touch(owner)

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"only an admin may {action}")


def _signing_key(runtime: Runtime) -> bytes:
    """The HMAC key tokens are signed with, kept in Secrets Manager and created on first use."""
    cached = runtime.cache.get(_SIGNING_KEY_CACHE)
    if cached is not None:
        return cached
    secret_id = f"{runtime.config.secret_prefix}token-signing-key"
    client = runtime.secrets
    try:
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        # Another handler may create it first: then theirs is the one to use.
        with contextlib.suppress(client.exceptions.ResourceExistsException):
            client.create_secret(
                Name=secret_id,
                SecretString=secrets.token_urlsafe(48),
                Description="Signs OpenFloat API bearer tokens",
            )
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    key = value.encode()
    runtime.cache[_SIGNING_KEY_CACHE] = key
    return key


def login(runtime: Runtime, store: Store, username: str, password: str) -> LoginView:
    user = store.get_user(username)
    if not verify_password(password, user.passwordHash if user else _DUMMY_HASH) or user is None:
        raise Unauthorized("wrong username or password")
    now = runtime.clock().astimezone(UTC)
    expires = now + timedelta(seconds=runtime.config.token_ttl_seconds)
    token = jwt.encode(
        {"sub": user.username, "iss": _TOKEN_ISSUER, "iat": now, "exp": expires},
        _signing_key(runtime),
        algorithm="HS256",
    )
    return LoginView(
        token=token,
        username=user.username,
        role=user.role,
        expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def job_token_secret_id(runtime: Runtime, job_id: str) -> str:
    return f"{runtime.config.secret_prefix}jobs/{job_id}/api-token"


def issue_job_token(runtime: Runtime, job_id: str, owner: str) -> str:
    """Give the job a token of its own, kept in Secrets Manager for its agent to hand in;
    the id of the secret. The token acts for the owner on this job only, and stops working
    when the job ends. Issuing again returns the same secret."""
    secret_id = job_token_secret_id(runtime, job_id)
    now = runtime.clock().astimezone(UTC)
    token = jwt.encode(
        {"sub": owner, "job": job_id, "iss": _TOKEN_ISSUER, "iat": now,
         "exp": now + timedelta(days=_JOB_TOKEN_DAYS)},
        _signing_key(runtime), algorithm="HS256")
    with contextlib.suppress(runtime.secrets.exceptions.ResourceExistsException):
        runtime.secrets.create_secret(Name=secret_id, SecretString=token,
                                      Description=f"OpenFloat API token of job {job_id}")
    return secret_id


def revoke_job_token(runtime: Runtime, job_id: str) -> None:
    """Delete the job's token secret; nothing to delete is fine."""
    with contextlib.suppress(runtime.secrets.exceptions.ResourceNotFoundException):
        runtime.secrets.delete_secret(SecretId=job_token_secret_id(runtime, job_id),
                                      ForceDeleteWithoutRecovery=True)


def authenticate(runtime: Runtime, store: Store, authorization: str | None) -> Principal:
    """The principal behind an `Authorization: Bearer ...` header, or Unauthorized."""
    if not authorization:
        raise Unauthorized("missing Authorization header; log in and send 'Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            _signing_key(runtime),
            algorithms=["HS256"],
            issuer=_TOKEN_ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
            leeway=timedelta(seconds=5),
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; log in again") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid; log in again") from None
    # Read the user on every request: a deleted user's tokens stop working at once, and a
    # role change takes effect without waiting for the token to expire.
    user = store.get_user(str(claims["sub"]))
    if user is None:
        raise Unauthorized(f"user {claims['sub']} no longer exists")
    job_id = claims.get("job")
    if job_id is None:
        return Principal(username=user.username, role=user.role)
    job = store.get_job(str(job_id))
    if job is None or job.owner != user.username or job.status in TERMINAL_STATUSES:
        raise Unauthorized(f"the token of job {job_id} no longer works: the job has ended")
    # A job acts with its owner's rights but never an admin's.
    return Principal(username=user.username, role="user", job=str(job_id))
