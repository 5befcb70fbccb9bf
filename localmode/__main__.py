"""`python -m localmode`: run the OpCenter on this machine with no AWS account.

moto runs in server mode on a loopback port and stands in for AWS; the stack is the template
`make package` builds for AWS, deployed through moto's CloudFormation (localmode/stack.py), and
the deployed API function's handler serves the API on another port. The workflows run in moto's
Step Functions interpreter, their Lambda tasks and the SQS event sources going to the handlers
the deployed functions name; every instance EC2 launches for a job becomes a real agent process
running real containers (localmode/instances.py). State lives in memory and in a scratch
directory, and is gone when the process stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from agent.registry import free_port
from chalicelib import runtime as runtime_module
from chalicelib.auth import check_password
from chalicelib.config import Config
from chalicelib.errors import BadRequest
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.users import ensure_admin
from infra.package import main as package_main
from localmode import pricing, trial
from localmode.api import Drills, Workers
from localmode.atomic import atomic_requests
from localmode.dynamodb_server import DynamoDBServer
from localmode.ec2fleet import faithful_fleets
from localmode.eventbridge import faithful_eventbridge
from localmode.instances import LocalInstances
from localmode.lambdas import Schedule, deployed_lambdas
from localmode.provision import LOCAL_WORKER_IMAGE
from localmode.s3 import faithful_s3
from localmode.stack import StackError, deploy, event_sources, schedules
from localmode.stepfunctions import faithful_stepfunctions

HOST = "127.0.0.1"
REGION = "us-east-1"
STACK = "openfloat-local"


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return int(text)


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 1 to 64")
    return int(text)


def _default_workers() -> int:
    configured = os.environ.get("OPENFLOAT_API_WORKERS")
    if configured is not None:
        try:
            return _workers(configured)
        except argparse.ArgumentTypeError as error:
            raise SystemExit(f"localmode: OPENFLOAT_API_WORKERS: {error}") from None
    return max(2, os.cpu_count() or 1)


def _seconds(name: str, default: int) -> float:
    """A positive number of seconds from the environment; exit naming the setting if not."""
    text = os.environ.get(name, str(default))
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise SystemExit(f"localmode: {name} must be a positive number of seconds, not {text!r}")
    return value


def _check_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise SystemExit(f"localmode: port {port} on {HOST} is taken ({error.strerror}); "
                             "stop what uses it or pass --port") from None


def _moto_config(endpoint: str, settings: dict[str, object]) -> None:
    """Change the AWS stand-in's own settings (moto's /moto-api/config)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                     data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode", description=__doc__)
    parser.add_argument("--port", type=_port, default=int(os.environ.get("OPENFLOAT_PORT", "8787")),
                        help="API port on 127.0.0.1 (default 8787, or $OPENFLOAT_PORT)")
    parser.add_argument("--aws-port", type=_port, default=None,
                        help="port of the local AWS stand-in (default: any free port)")
    # Absolute: agents and podman run from directories of their own.
    parser.add_argument("--state-dir", type=lambda text: Path(text).absolute(), default=None,
                        help="where agents keep jobs and checkpoints in flight (default: a new "
                        "temporary directory, removed on exit)")
    parser.add_argument("--api-workers", type=_workers, default=_default_workers(),
                        help="processes serving the API (default: one per core, at least 2, or "
                        "$OPENFLOAT_API_WORKERS)")
    args = parser.parse_args(argv)
    _check_free(args.port)
    aws_port = args.aws_port or free_port(HOST)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    # Undone in reverse order on the way out: the API first, the AWS stand-in last.
    with contextlib.ExitStack() as running:
        # What `make package` builds for AWS is what runs here: the same template and code.
        package_dir = Path(tempfile.mkdtemp(prefix="openfloat-package-"))
        running.callback(shutil.rmtree, package_dir, ignore_errors=True)
        if package_main([str(package_dir / "package")]) != 0:
            raise SystemExit("localmode: building the deployable template failed (see above)")
        aws = ThreadedMotoServer(ip_address=HOST, port=aws_port, verbose=False)
        aws.start()
        running.callback(aws.stop)
        # Each DynamoDB request one step, as on AWS: the server answers requests in threads.
        running.enter_context(atomic_requests())
        running.enter_context(faithful_s3())
        endpoint = f"http://{HOST}:{aws_port}"
        # DynamoDB, which every API request reads, on connections that stay open.
        dynamodb = DynamoDBServer(HOST, 0).start()
        running.callback(dynamodb.stop)
        # Workflows run for real. Set before any state machine exists: moto keeps the machines
        # of its interpreter apart from those it only records.
        _moto_config(endpoint, {"stepfunctions": {"execute_state_machine": True}})
        # Every boto3 client made from here on, in this process and its children, talks to moto.
        os.environ.update(
            # moto's Step Functions interpreter calls the other services at localhost:MOTO_PORT.
            MOTO_PORT=str(aws_port),
            AWS_ENDPOINT_URL=endpoint,
            AWS_ENDPOINT_URL_DYNAMODB=dynamodb.url,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        os.environ.pop("AWS_PROFILE", None)
        session = boto3.Session(region_name=REGION)
        try:
            stack = deploy(session, STACK, {"WorkerImageId": LOCAL_WORKER_IMAGE,
                                            "LicenseIssuerKey": trial.public_key()},
                           package_dir / "package")
            # The settings each deployed function has, as CloudFormation resolved them.
            settings = stack.settings(session.client("lambda"))
        except StackError as error:
            raise SystemExit(f"localmode: {error}") from None
        os.environ.update(settings)
        runtime = Runtime.from_config(Config.from_env(), session)
        runtime_module.install(runtime)
        pricing.stand_in(runtime)

        admin = os.environ.get("OPENFLOAT_ADMIN_USER", "admin")
        password = os.environ.get("OPENFLOAT_ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        try:
            check_password(password, admin)
        except BadRequest as error:
            raise SystemExit(f"localmode: OPENFLOAT_ADMIN_PASSWORD: {error.message}") from None
        store = Store(runtime.dynamodb, runtime.config)
        ensure_admin(runtime, store, admin, password)
        licensed = trial.apply_trial(runtime, store)

        # The API is what API Gateway invokes: the APIHandler function's own Handler, run by
        # the API's worker processes as Lambda would run it.
        api_handler = session.client("lambda").get_function_configuration(
            FunctionName=stack.outputs["APIHandlerName"])["Handler"]
        # Each Lambda invocation runs the Handler its deployed function names.
        running.enter_context(deployed_lambdas())
        running.enter_context(faithful_stepfunctions())
        running.enter_context(faithful_eventbridge())
        running.enter_context(faithful_fleets())
        state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="openfloat-local-"))
        if args.state_dir is None:
            running.callback(shutil.rmtree, state_dir, ignore_errors=True)
        # Every agent and container goes before the AWS stand-in they talk to.
        instances = LocalInstances(session, state_dir).start()
        running.callback(instances.stop)
        runtime.reclaimer = instances
        # The stack's event source mappings and schedules, run as Lambda and EventBridge do.
        for feeder in event_sources(session, stack):
            running.callback(feeder.start().stop)
        for handler, name, period in schedules(session, stack):
            seconds = _seconds("OPENFLOAT_RECONCILE_SECONDS", period)
            running.callback(Schedule(handler, name, seconds).start().stop)

        listening = socket.create_server((HOST, args.port), backlog=512)
        running.callback(listening.close)
        # Its own directory: a Unix socket's path must be short, whatever --state-dir is.
        drill_dir = Path(tempfile.mkdtemp(prefix="openfloat-drills-"))
        running.callback(shutil.rmtree, drill_dir, ignore_errors=True)
        drills = Drills(instances, drill_dir / "drills.sock").start()
        running.callback(drills.stop)
        workers = Workers(listening, api_handler, args.api_workers, drills).start()
        running.callback(workers.stop)
        url = f"http://{HOST}:{args.port}"
        print(f"OpenFloat OpCenter is running at {url}", flush=True)
        print(f"  AWS stand-in (moto) at {endpoint}; state in memory and in {state_dir}",
              flush=True)
        if generated:
            print(f"  admin user: {admin}   password: {password}   (generated; shown only now)",
                  flush=True)
        else:
            print(f"  admin user: {admin}   password: from OPENFLOAT_ADMIN_PASSWORD", flush=True)
        print(f"  license: {licensed['id']} (trial, {licensed['coreHourQuota']} core-hours a "
              f"month, until {licensed['end']}; float license info)", flush=True)
        print(f"  log in:  .venv/bin/float login -a {url} -u {admin} -p <password>", flush=True)
        print("  stop with Ctrl-C", flush=True)

        stopping = threading.Event()
        signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
        stopping.wait()
    print("OpenFloat OpCenter stopped; its in-memory state is gone", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
