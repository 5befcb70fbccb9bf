"""Fixtures shared by the suites: a moto AWS provisioned from infra/, and API callers."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# moto's EC2 reads every public AMI of the region for each fresh mock; the tests (and the local
# OpCenters they start) need only the one the stack names as its worker image. Set before moto
# is imported, as moto reads it then.
os.environ.setdefault("MOTO_AMIS_PATH", str(Path(__file__).with_name("moto-amis.json")))

import boto3
import botocore.session
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.cloudformation import models as cloudformation_models
from moto.kms import models as kms_models

from chalicelib import auth
from chalicelib import runtime as runtime_module
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.users import ensure_admin
from localmode import pricing, trial
from localmode.atomic import atomic_requests
from localmode.provision import provision
from localmode.s3 import faithful_s3

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-1"


# Password hashes made in tests cost little: a stored hash names its own scrypt cost, which
# every check reads back, so nothing but the time differs from the OpCenter's own.
OPCENTER_SCRYPT_N = auth._SCRYPT_N
auth._SCRYPT_N = 2**10

# moto, where only its speed differs: CloudFormation parses a JSON template with a pure-Python
# YAML parser first, and each new table's KMS key gets a fresh RSA key pair. Each costs more
# than the rest of a test's AWS together; the outcome is the same.
_yaml_first = cloudformation_models.Stack.parse_template


def _json_first(template: str) -> dict[str, Any]:
    try:
        return dict(json.loads(template))
    except ValueError:
        return dict(_yaml_first(template))


cloudformation_models.Stack.parse_template = staticmethod(_json_first)  # type: ignore[method-assign]
kms_models.generate_private_key = functools.lru_cache(maxsize=None)(kms_models.generate_private_key)

# Each test's clients read the SDK's service models through one loader: reading them again for
# every test (they are large compressed JSON files) costs most of a test's setup.
_LOADER = botocore.session.get_session().get_component("data_loader")


def _botocore_session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.register_component("data_loader", _LOADER)
    return session


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Each DynamoDB request atomic, as on AWS: tests race writers and readers in threads; S3
    # refuses bytes that do not match the checksum sent with them.
    with mock_aws(), atomic_requests(), faithful_s3():
        yield boto3.Session(region_name="us-east-1", botocore_session=_botocore_session())


@pytest.fixture
def settings(aws: boto3.Session) -> dict[str, str]:
    return provision(aws, "openfloat-test")


@pytest.fixture
def runtime(aws: boto3.Session, settings: dict[str, str]) -> Iterator[Runtime]:
    rt = Runtime.from_config(Config.from_env(settings), aws)
    runtime_module.install(rt)
    # Jobs start at once, as in the local mode; the licensing tests remove or replace it.
    trial.apply_trial(rt, Store(rt.dynamodb, rt.config))
    pricing.stand_in(rt)
    yield rt
    runtime_module.install(None)


@pytest.fixture
def store(runtime: Runtime) -> Store:
    return Store(runtime.dynamodb, runtime.config)


@dataclass
class Caller:
    """Calls the API through Chalice's test client as one user."""

    client: Client
    token: str | None

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None) -> Any:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        use = self.token if token is None else token
        if use:
            all_headers["Authorization"] = f"Bearer {use}"
        payload = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        return getattr(self.client.http, method.lower())(path, headers=all_headers, body=payload)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Client]:
    from app import app

    with Client(app) as test_client:
        yield test_client


def log_in(client: Client, username: str, password: str) -> Caller:
    response = client.http.post(
        "/v1/login",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"username": username, "password": password}),
    )
    assert response.status_code == 200, response.body
    return Caller(client, response.json_body["token"])


@pytest.fixture
def admin(client: Client, runtime: Runtime, store: Store) -> Caller:
    ensure_admin(runtime, store, ADMIN, ADMIN_PASSWORD)
    return log_in(client, ADMIN, ADMIN_PASSWORD)


@pytest.fixture
def make_user(client: Client, admin: Caller) -> Any:
    def make(username: str, role: str = "user") -> Caller:
        password = f"{username}-password-1"
        response = admin.post("/v1/users", {"username": username, "password": password, "role": role})
        assert response.status_code == 201, response.body
        return log_in(client, username, password)

    return make


@pytest.fixture
def alice(make_user: Any) -> Caller:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Any) -> Caller:
    return make_user("bob")


@pytest.fixture
def served(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The OpCenter's API served over HTTP on a loopback port, as the local mode serves it: its
    base URL."""
    from chalice import local
    from chalice.config import Config as ChaliceConfig

    from app import app

    # The server's access log would land in the stderr the tests read.
    monkeypatch.setattr(local.ChaliceRequestHandler, "log_message", lambda self, *args: None)
    plain = app.__class__
    server = local.create_local_server(app, ChaliceConfig.create(chalice_stage="dev",
                                                           app_name="openfloat"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.server.shutdown()
        server.server.server_close()
        app.__class__ = plain  # the local server re-classes the app; other suites use it as is
