"""`python -m agent`: the worker agent process, as an instance's user-data (or the local
instance manager) starts it. Settings come from flags or OPENFLOAT_AGENT_* variables."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import boto3
from botocore.config import Config as BotoConfig

from agent.agent import Agent, AgentSettings
from agent.imds import AWS_IMDS, Imds, ImdsUnavailable


def _setting(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"OPENFLOAT_AGENT_{name}", default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    parser.add_argument("--bucket", default=_setting("BUCKET"), help="the OpCenter's data bucket")
    parser.add_argument("--commands-queue", default=_setting("COMMANDS_QUEUE"),
                        help="URL of this instance's command queue")
    parser.add_argument("--events-queue", default=_setting("EVENTS_QUEUE"),
                        help="URL of the control plane's agent events queue")
    parser.add_argument("--imds", default=_setting("IMDS", AWS_IMDS),
                        help="instance metadata address (default: EC2's)")
    parser.add_argument("--job-root", default=_setting("JOB_ROOT", "/var/lib/openfloat/jobs"))
    parser.add_argument("--work-dir", default=_setting("WORK_DIR", "/var/lib/openfloat/agent"))
    parser.add_argument("--host-root", default=_setting("HOST_ROOT", "/"),
                        help="where this host's own files are (--dirMap directories)")
    parser.add_argument("--publish-address", default=_setting("PUBLISH_ADDRESS", ""),
                        help="address published ports listen on, as `IP:` (default: all)")
    parser.add_argument("--block-devices", default=_setting("BLOCK_DEVICES"),
                        help="a directory of attached volumes, one directory each, named by "
                             "volume id (an emulated instance; default: EC2's disks)")
    # A string default goes through `type` too: a bad variable is refused like a bad flag.
    parser.add_argument("--heartbeat-seconds", type=float,
                        default=_setting("HEARTBEAT_SECONDS", "15"),
                        help="how often the agent reports in (default 15; the OpCenter's "
                             "AGENT_SILENCE_SECONDS must allow a few missed ones)")
    args = parser.parse_args(argv)
    if not 1 <= args.heartbeat_seconds <= 300:
        print(f"agent: --heartbeat-seconds {args.heartbeat_seconds:g} must be 1 to 300",
              file=sys.stderr)
        return 2
    missing = [flag for flag, value in (("--bucket", args.bucket),
                                        ("--commands-queue", args.commands_queue),
                                        ("--events-queue", args.events_queue)) if not value]
    if missing:
        print(f"agent: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.publish_address and not args.publish_address.endswith(":"):
        print(f"agent: --publish-address {args.publish_address!r} must be `IP:` (with the "
              "colon), as in 127.0.0.1:", file=sys.stderr)
        return 2
    imds = Imds(args.imds)
    try:
        instance_id = imds.instance_id()
        instance_type = imds.get("instance-type")
        # Where published ports are reached: the address they listen on, if only one; else
        # the instance's private address.
        listen = args.publish_address.removesuffix(":")
        address = listen if listen not in ("", "0.0.0.0") else imds.get("local-ipv4")
    except ImdsUnavailable as error:
        print(f"agent: cannot read instance metadata at {args.imds}: {error}", file=sys.stderr)
        return 1
    session = boto3.Session()
    agent = Agent(
        settings=AgentSettings(
            instance_id=instance_id, instance_type=instance_type, bucket=args.bucket,
            commands_queue_url=args.commands_queue, events_queue_url=args.events_queue,
            # Absolute: podman runs from a directory of its own (agent/podman.py).
            imds_url=args.imds, job_root=Path(args.job_root).absolute(),
            work_dir=Path(args.work_dir).absolute(), host_root=Path(args.host_root).absolute(),
            publish_address=args.publish_address,
            block_devices=Path(args.block_devices).absolute() if args.block_devices else None,
            address=address, heartbeat_seconds=args.heartbeat_seconds),
        # The agent sends each checkpoint part's SHA-256 itself (S3 verifies it) and checks
        # what it reads back: the SDK's own CRC32 on top, or a second SHA-256 of each body to
        # sign it (the SDK skips that over HTTPS only), would only cost the window time.
        s3=session.client("s3", config=BotoConfig(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"payload_signing_enabled": False})),
        sqs=session.client("sqs"),
        sfn=session.client("stepfunctions"), secrets=session.client("secretsmanager"),
        imds=imds,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
