"""Schemathesis against the OpenAPI document the API serves, over HTTP: every operation, with
data that fits the document and data that does not, sent once with an admin's token and once
with a plain user's. No answer may be a server error, and every answer must be one the
document lists for its route, with the body and content type it documents.

Examples are drawn reproducibly (derandomized): a failure found in CI is found again locally.
`POST /v1/logout` is left out: it would revoke the token the rest of the run uses (logging out
is tested in test_sessions.py).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from chalicelib import users
from chalicelib.auth import Principal
from chalicelib.users import ensure_admin
from chalicelib.wire.api import UserRequest
from tests.conftest import ADMIN, ADMIN_PASSWORD

PLAIN, PLAIN_PASSWORD = "plain", "plain-password-1"
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]
LEFT_OUT = {"POST /v1/logout"}
# Requests drawn per operation; a longer hunt: OPENFLOAT_FUZZ_EXAMPLES=500 make test.
EXAMPLES = int(os.environ.get("OPENFLOAT_FUZZ_EXAMPLES", "20"))


def app_routes() -> list[tuple[str, str]]:
    from app import routes

    return [(op.method, op.path) for op in routes.operations]


def _log_in(base: str, username: str, password: str) -> str:
    answer = requests.post(f"{base}/v1/login", json={"username": username, "password": password},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@pytest.fixture
def tokens(served: str, runtime: Any, store: Any) -> dict[str, str]:
    ensure_admin(runtime, store, ADMIN, ADMIN_PASSWORD)
    users.create(runtime, store, Principal(username=ADMIN, role="admin"),
                 UserRequest(username=PLAIN, password=PLAIN_PASSWORD))
    return {"admin": _log_in(served, ADMIN, ADMIN_PASSWORD),
            "user": _log_in(served, PLAIN, PLAIN_PASSWORD)}


def _served_document(served: str, token: str) -> dict[str, Any]:
    answer = requests.get(f"{served}/v1/openapi.json", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _fuzz(operation: Any, served: str, tokens: dict[str, str]) -> None:
    """Hypothesis draws requests for one operation, each sent with both tokens; the first
    failing check raises, shrunk to the smallest request that fails it."""
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    def each(case: Any) -> None:
        for token in tokens.values():
            case.call_and_validate(base_url=served, checks=CHECKS,
                                   headers={"Authorization": f"Bearer {token}"})

    each()


def test_no_request_breaks_the_api_or_gets_an_undocumented_answer(served, tokens):
    schema = schemathesis.openapi.from_dict(_served_document(served, tokens["user"]))
    operations = [result.ok() for result in schema.get_all_operations()]
    tried, failures = [], []
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if label in LEFT_OUT:
            continue
        tried.append(label)
        try:
            _fuzz(operation, served, tokens)
        except Exception as failure:  # a check failed: note it, go on with the next operation
            failures.append(f"{label}: {failure}")
    # Every route was fuzzed: the document lists them all, and the run cannot pass by
    # reaching none.
    assert len(tried) == len(app_routes()) - len(LEFT_OUT), tried
    assert not failures, "\n\n".join(failures)
