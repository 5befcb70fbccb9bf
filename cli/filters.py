"""`float list -f` filters: MMCloud's `key=value [or key=value]...` turned into the query of
GET /v1/jobs. Several -f are ANDed; `or` joins values of one key, and only status takes several."""

from __future__ import annotations

import re

from chalicelib.wire.status import JobStatus
from cli.errors import UsageError

KEYS = ("status", "user", "name")
_OR = re.compile(r"\s+or\s+")
_STATUSES = {status.value.lower(): status.value for status in JobStatus}


def to_query(filters: list[str]) -> dict[str, str]:
    """[`status=Executing or status=Suspended`, `user=x`] → {status: "Executing,Suspended",
    user: "x"}."""
    query: dict[str, str] = {}
    for text in filters:
        key, values = _parse(text)
        if key in query:
            raise UsageError(
                f"-f {key}=... is given twice; to match either value write "
                f'-f "{key}=A or {key}=B" (status only)'
            )
        query[key] = ",".join(values)
    return query


def _parse(text: str) -> tuple[str, list[str]]:
    keys: list[str] = []
    values: list[str] = []
    for term in _OR.split(text.strip()):
        key, sep, value = (part.strip() for part in term.partition("="))
        if not sep or not key or not value:
            raise UsageError(f"-f {text!r}: expected key=value, such as status=Executing")
        if key not in KEYS:
            raise UsageError(f"-f {text!r}: unknown key {key!r} (known: {', '.join(KEYS)})")
        keys.append(key)
        values.append(_status(value) if key == "status" else value)
    if len(set(keys)) > 1:
        raise UsageError(f"-f {text!r}: 'or' joins values of one key; use one -f per key")
    if keys[0] != "status" and len(values) > 1:
        raise UsageError(f"-f {text!r}: only status takes several values")
    return keys[0], values


def _status(value: str) -> str:
    try:
        return _STATUSES[value.lower()]
    except KeyError:
        raise UsageError(
            f"{value!r} is not a job status (known: {', '.join(_STATUSES.values())})"
        ) from None
