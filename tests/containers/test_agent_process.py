"""`python -m agent` as an instance starts it: commands arrive on its queue, events leave on
the control plane's, and a terminate command ends the process."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent.registry import free_port
from chalicelib.logs import read_stream
from chalicelib.wire.agent import CommandEnvelope, EventEnvelope, RunCommand, TerminateCommand
from localmode.imds import LocalImds
from tests.containers.conftest import BUSYBOX, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def moto_server():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_the_agent_process_runs_commands_from_its_queue_and_reports_events(moto_server, tmp_path):
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local",
                            region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=moto_server)
    sqs = session.client("sqs", endpoint_url=moto_server)
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="jobs/proc/script", Body=b"echo from the agent process\n")
    commands = sqs.create_queue(QueueName="commands-i-proc")["QueueUrl"]
    events = sqs.create_queue(QueueName="events")["QueueUrl"]
    imds = LocalImds("i-proc").start()
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "--bucket", "data", "--commands-queue", commands,
         "--events-queue", events, "--imds", imds.url, "--job-root", str(tmp_path / "jobs"),
         "--work-dir", str(tmp_path / "work")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    received = []

    def kinds():
        for message in sqs.receive_message(QueueUrl=events, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            received.append(EventEnvelope.model_validate_json(message["Body"]).event)
            sqs.delete_message(QueueUrl=events, ReceiptHandle=message["ReceiptHandle"])
        return [event.kind for event in received]

    try:
        wait_for(lambda: "registered" in kinds(), 30, "the agent to register")
        run = RunCommand(job={"jobId": "proc", "imageUri": BUSYBOX, "scriptKey": "jobs/proc/script"})
        sqs.send_message(QueueUrl=commands, MessageBody=CommandEnvelope(command=run).model_dump_json())
        wait_for(lambda: "job-exited" in kinds(), 60, "the job to run and exit")
        stdout = read_stream(s3, "data", "proc", "stdout")
        assert stdout == b"from the agent process\n"
        assert received[0].instanceId == "i-proc"
        # Where its published ports would be reached: the instance's private address.
        wait_for(lambda: "heartbeat" in kinds(), 30, "a heartbeat")
        assert {e.address for e in received if e.kind == "heartbeat"} == {"127.0.0.1"}
        sqs.send_message(QueueUrl=commands,
                         MessageBody=CommandEnvelope(command=TerminateCommand()).model_dump_json())
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        imds.stop()
