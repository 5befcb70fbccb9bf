"""Page tokens as the API hands them out: opaque, and only good for the list they came from.

A list's own resume point (a DynamoDB key, a Secrets Manager token) never reaches a client as
is: it is sealed with an HMAC over the route, the caller and the list's filters. A token that
was made up, edited, or taken from another list or another user is refused with a 400 before
anything reads it, so no upstream service ever sees a client's guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from chalicelib.auth import derived_key
from chalicelib.errors import BadRequest
from chalicelib.runtime import Runtime

_PURPOSE = "openfloat page tokens"
_MAC_BYTES = 16
# Longer than any resume point a list of ours makes (a few keys of a few hundred bytes).
MAX_TOKEN_CHARS = 4096


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(runtime: Runtime, scope: str, inner: str) -> bytes:
    message = f"{scope}\n{inner}".encode()
    return hmac.new(derived_key(runtime, _PURPOSE), message, hashlib.sha256).digest()[:_MAC_BYTES]


def seal(runtime: Runtime, scope: str, inner: str) -> str:
    """The token a client gets for resuming the list `scope` at `inner`."""
    return f"{_encode(inner.encode())}.{_encode(_mac(runtime, scope, inner))}"


def unseal(runtime: Runtime, scope: str, token: str) -> str:
    """The resume point inside a token this list handed out; BadRequest for any other."""
    refused = BadRequest("nextToken is not a token this list handed out; start the list again "
                         "without it", field="nextToken")
    body, dot, mac = token.partition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise refused
    try:
        inner = _decode(body).decode()
        given = _decode(mac)
    except (binascii.Error, ValueError):
        raise refused from None
    if not hmac.compare_digest(given, _mac(runtime, scope, inner)):
        raise refused
    return inner
