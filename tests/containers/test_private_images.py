"""Private Application Library images are pulled from their registry with the stored
credentials; wrong credentials are a named failure."""

import json
import subprocess

import pytest

from agent.podman import podman_environment
from agent.registry import start_registry
from chalicelib.wire.agent import RunCommand
from tests.containers.conftest import BUSYBOX, wait_for

USER, TOKEN = "robot", "registry-token-7f3e"


@pytest.fixture
def private_image(tmp_path):
    """busybox pushed to a local registry that wants a password, and gone from local storage."""
    registry = start_registry(tmp_path / "registry", users={USER: TOKEN})
    reference = registry.image("lab/private-tool:1.0")
    env = podman_environment()

    def podman(*args):
        subprocess.run(["podman", *args], env=env, check=True, capture_output=True, text=True)

    podman("tag", BUSYBOX, reference)
    podman("push", "--tls-verify=false", "--creds", f"{USER}:{TOKEN}", reference)
    podman("rmi", reference)
    yield reference
    subprocess.run(["podman", "rmi", "--ignore", reference], env=env, capture_output=True)
    registry.stop()


def _secret(fleet, name, username, token):
    return fleet.aws.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"username": username, "token": token}))["ARN"]


def test_a_private_image_is_pulled_with_the_stored_credentials(fleet, private_image):
    agent = fleet.agent("i-private")
    secret = _secret(fleet, "openfloat/test/images/private-tool", USER, TOKEN)
    launch = fleet.launch("private", private_image, "echo pulled and ran\n",
                          credentialsSecretId=secret)
    agent.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: agent.watch_job() or agent.job is None, 30, "the job to finish")
    assert fleet.stdout("private") == "pulled and ran\n"


def test_wrong_credentials_are_a_named_failure_that_keeps_the_token_secret(fleet, private_image):
    agent = fleet.agent("i-wrong")
    secret = _secret(fleet, "openfloat/test/images/wrong", USER, "not-the-token")
    agent.handle(RunCommand(taskToken="run", job=fleet.launch(
        "wrong", private_image, "true", credentialsSecretId=secret)))
    answer = fleet.sfn.answers[-1]
    assert answer["error"] == "RegistryAuthFailed"
    assert "refused the credentials" in answer["cause"] and "not-the-token" not in answer["cause"]
    assert agent.job is None
