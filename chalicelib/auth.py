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

from chalicelib.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import LoginView, LogoutView, Role
from chalicelib.wire.status import TERMINAL_STATUSES

# scrypt (RFC 7914) with n=2**15, r=8, p=1: about 32 MiB and a few tens of ms per check.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_TOKEN_ISSUER = "openfloat"
_SIGNING_KEY_CACHE = "token-signing-key"
# A job's own token outlives any job; it is refused as soon as its job has ended.
_JOB_TOKEN_DAYS = 366
# Failed logins allowed in a window, per user name and per source address, before further
# tries are refused without a password check until the window ends.
LOGIN_WINDOW_SECONDS = 15 * 60
MAX_FAILED_LOGINS_PER_USER = 5
MAX_FAILED_LOGINS_PER_ADDRESS = 30
MIN_PASSWORD_LENGTH = 10
# zxcvbn's score out of 4; 3 is "safely unguessable" against throttled online guessing and
# moderately so offline, and zxcvbn reads at most 72 characters.
_MIN_PASSWORD_SCORE = 3
_SCORED_CHARACTERS = 72


def check_password(password: str, username: str) -> None:
    """Refuse a password that is short or easy to guess (a common word, the user's name...)."""
    from zxcvbn import zxcvbn  # its word lists load on first use, not on every cold start

    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"password: must be at least {MIN_PASSWORD_LENGTH} characters",
                         field="password")
    verdict = zxcvbn(password[:_SCORED_CHARACTERS], user_inputs=[username, "openfloat", "float"])
    if verdict["score"] < _MIN_PASSWORD_SCORE:
        hint = verdict["feedback"]["warning"] or "it follows a pattern guessers try first"
        raise BadRequest(f"password: too easy to guess ({hint.rstrip('.')}); three or four "
                         "unrelated words make a strong one", field="password")


def new_generation() -> str:
    return secrets.token_urlsafe(12)


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
    # A login token's id and expiry (epoch seconds), for `float logout` to revoke it.
    token_id: str | None = None
    token_expires: int = 0

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


def derived_key(runtime: Runtime, purpose: str) -> bytes:
    """A key for one purpose only (page tokens, say), derived from the token signing key."""
    return hmac.new(_signing_key(runtime), purpose.encode(), hashlib.sha256).digest()


def _refuse_if_throttled(store: Store, subjects: list[tuple[str, int, str]], now: int) -> None:
    for subject, limit, what in subjects:
        record = store.failed_logins(subject)
        if record is None or record.failures < limit:
            continue
        wait = record.windowStart + LOGIN_WINDOW_SECONDS - now
        if wait > 0:
            raise TooManyRequests(f"too many failed logins {what}: try again in {wait} s",
                                  retry_after=wait)


def login(runtime: Runtime, store: Store, username: str, password: str,
          address: str) -> LoginView:
    now_moment = runtime.clock().astimezone(UTC)
    now = int(now_moment.timestamp())
    subjects = [(f"user/{username}", MAX_FAILED_LOGINS_PER_USER, f"for user {username}"),
                (f"address/{address}", MAX_FAILED_LOGINS_PER_ADDRESS, f"from {address}")]
    # A throttled try is refused before the password is checked: guessing gains nothing.
    _refuse_if_throttled(store, subjects, now)
    user = store.get_user(username)
    if not verify_password(password, user.passwordHash if user else _DUMMY_HASH) or user is None:
        for subject, _, _ in subjects:
            store.count_failed_login(subject, now, LOGIN_WINDOW_SECONDS)
        raise Unauthorized("wrong username or password")
    store.clear_failed_logins(subjects[0][0])
    if not user.tokenGeneration:
        user = store.ensure_generation(user.username, new_generation())
    expires = now_moment + timedelta(seconds=runtime.config.token_ttl_seconds)
    token = jwt.encode(
        {"sub": user.username, "gen": user.tokenGeneration, "jti": secrets.token_urlsafe(12),
         "iss": _TOKEN_ISSUER, "iat": now_moment, "exp": expires},
        _signing_key(runtime),
        algorithm="HS256",
    )
    return LoginView(
        token=token,
        username=user.username,
        role=user.role,
        expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def logout(runtime: Runtime, store: Store, principal: Principal) -> LogoutView:
    """Revoke the token the caller presented: it is refused from now until it expires."""
    now = int(runtime.clock().timestamp())
    if principal.token_id is None:
        # A token from before tokens had ids: only a new generation stops it (and the user's
        # other tokens of that age).
        store.ensure_generation(principal.username, new_generation())
    else:
        store.revoke_token(principal.username, principal.token_id, principal.token_expires, now)
    return LogoutView(username=principal.username, revoked=True)


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
        if claims.get("gen", "") != user.tokenGeneration:
            raise Unauthorized(f"the token is no longer good: {user.username}'s password was "
                               "changed, or the user was deleted and created again; log in again")
        token_id = claims.get("jti")
        if token_id is not None and str(token_id) in user.revokedTokens:
            raise Unauthorized("the token was given up by logging out; log in again")
        return Principal(username=user.username, role=user.role,
                         token_id=None if token_id is None else str(token_id),
                         token_expires=int(claims["exp"]))
    job = store.get_job(str(job_id))
    if job is None or job.owner != user.username or job.status in TERMINAL_STATUSES:
        raise Unauthorized(f"the token of job {job_id} no longer works: the job has ended")
    if job.submitTime < user.createTime:
        raise Unauthorized(f"the token of job {job_id} was issued to an earlier user named "
                           f"{user.username}")
    # A job acts with its owner's rights but never an admin's.
    return Principal(username=user.username, role="user", job=str(job_id))
