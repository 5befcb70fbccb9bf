"""`python -m localmode`: run the OpCenter on this machine with no AWS account.

moto runs in server mode on a loopback port and stands in for AWS; the resources come from
infra/ and statemachines/ exactly as a deployment creates them; the Chalice app serves the API
on another port. The workflows run in moto's Step Functions interpreter, their Lambda tasks and
the SQS event sources going to the same handlers Lambda runs; every instance EC2 launches for a
job becomes a real agent process running real containers (localmode/instances.py). State lives
in memory and in a scratch directory, and is gone when the process stops.
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
from types import FrameType

import boto3
from chalice.config import Config as ChaliceConfig
from chalice.local import create_local_server
from moto.server import ThreadedMotoServer

from agent.registry import free_port
from chalicelib import runtime as runtime_module
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.users import ensure_admin
from localmode.ec2fleet import faithful_fleets
from localmode.eventbridge import faithful_eventbridge
from localmode.instances import LocalInstances
from localmode.lambdas import Schedule, local_lambdas
from localmode.provision import provision
from localmode.queues import QueueFeeder
from localmode.stepfunctions import faithful_stepfunctions

HOST = "127.0.0.1"
REGION = "us-east-1"
STACK = "openfloat-local"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return int(text)


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
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where agents keep jobs and checkpoints in flight (default: a new "
                        "temporary directory, removed on exit)")
    args = parser.parse_args(argv)
    _check_free(args.port)
    aws_port = args.aws_port or free_port(HOST)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    # Undone in reverse order on the way out: the API first, the AWS stand-in last.
    with contextlib.ExitStack() as running:
        aws = ThreadedMotoServer(ip_address=HOST, port=aws_port, verbose=False)
        aws.start()
        running.callback(aws.stop)
        endpoint = f"http://{HOST}:{aws_port}"
        # Workflows run for real. Set before any state machine exists: moto keeps the machines
        # of its interpreter apart from those it only records.
        _moto_config(endpoint, {"stepfunctions": {"execute_state_machine": True}})
        # Every boto3 client made from here on, in this process and its children, talks to moto.
        os.environ.update(
            # moto's Step Functions interpreter calls the other services at localhost:MOTO_PORT.
            MOTO_PORT=str(aws_port),
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        os.environ.pop("AWS_PROFILE", None)
        session = boto3.Session(region_name=REGION)
        settings = provision(session, STACK)
        os.environ.update(settings)
        runtime = Runtime.from_config(Config.from_env(), session)
        runtime_module.install(runtime)

        admin = os.environ.get("OPENFLOAT_ADMIN_USER", "admin")
        password = os.environ.get("OPENFLOAT_ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        ensure_admin(runtime, Store(runtime.dynamodb, runtime.config), admin, password)

        from app import app  # imported after the environment is set, as Lambda would

        # The workflows' Lambda tasks and the queues' event sources go to the app's handlers.
        handlers = running.enter_context(local_lambdas(app))
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
        for queue, name in ((runtime.config.ec2_events_queue, "ec2-events"),
                            (runtime.config.agent_events_queue, "agent-events")):
            running.callback(QueueFeeder(runtime.sqs, queue, handlers[name], name).start().stop)
        running.callback(Schedule(handlers["reconcile"], "reconcile",
                                  _seconds("OPENFLOAT_RECONCILE_SECONDS", 60)).start().stop)

        server = create_local_server(
            app, ChaliceConfig.create(chalice_stage="dev", app_name="openfloat"), HOST, args.port
        )
        running.callback(server.server.server_close)
        url = f"http://{HOST}:{args.port}"
        print(f"OpenFloat OpCenter is running at {url}", flush=True)
        print(f"  AWS stand-in (moto) at {endpoint}; state in memory and in {state_dir}",
              flush=True)
        if generated:
            print(f"  admin user: {admin}   password: {password}   (generated; shown only now)",
                  flush=True)
        else:
            print(f"  admin user: {admin}   password: from OPENFLOAT_ADMIN_PASSWORD", flush=True)
        print(f"  log in:  .venv/bin/float login -a {url} -u {admin} -p <password>", flush=True)
        print("  stop with Ctrl-C", flush=True)

        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            if not stopping.is_set():
                stopping.set()
                threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        server.server.serve_forever(poll_interval=0.2)
    print("OpenFloat OpCenter stopped; its in-memory state is gone", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
