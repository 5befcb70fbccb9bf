"""Jobs reach the network through the `openfloat` podman network, and keep reaching it after a
move: an object fetched from S3 before a checkpoint is fetched again after the restore on
another host, whose network gives the job a new address; an open TCP connection is dropped
by the move without failing it, and the job opens a new one; a published port answers again
on the new host, served by the same process."""

import json
import socketserver
import subprocess
import threading
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from agent.podman import Podman
from agent.registry import free_port
from chalicelib.wire.agent import CheckpointCommand, RestoreCommand, RunCommand
from tests.containers.conftest import BUSYBOX, PYTHON, wait_for

# Fetches one S3 object by its presigned URL every 0.2 s, printing what it holds each time
# that changes, until it holds "stop". A fetch the move cut short is tried again.
FETCHER = """\
#!/usr/bin/python3
import os, time, urllib.request
last = None
while last != "stop":
    try:
        with urllib.request.urlopen(os.environ["OBJECT_URL"], timeout=5) as reply:
            body = reply.read().decode()
    except OSError as error:
        print("fetch failed:", error, flush=True)
    else:
        if body != last:
            print("fetched", body, flush=True)
            last = body
    time.sleep(0.2)
"""

# Holds one connection open, writing to it every 0.2 s; once a write fails, opens another.
CONNECTOR = """\
#!/usr/bin/python3
import os, socket, time
server = (os.environ["SERVER_HOST"], int(os.environ["SERVER_PORT"]))
connection = socket.create_connection(server, timeout=10)
connection.sendall(b"first\\n")
print("connected", flush=True)
while True:
    time.sleep(0.2)
    try:
        connection.sendall(b"ping\\n")
    except OSError as error:
        print("connection lost:", type(error).__name__, flush=True)
        break
connection = socket.create_connection(server, timeout=10)
connection.sendall(b"second\\n")
print("reconnected, server says", connection.makefile().readline().strip(), flush=True)
"""

# Counts the requests it serves in memory: after a move the count goes on.
COUNTING_SERVER = """\
#!/usr/bin/python3
import http.server
served = 0
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        body = f"request {served}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("", 8080), Handler).serve_forever()
"""


def _lines(fleet, job_id):
    return fleet.stdout(job_id).splitlines()


def _address(podman: Podman, name: str) -> str:
    """The container's address on the jobs' network."""
    result = subprocess.run(["podman", "container", "inspect", name, "--format",
                             "{{json .NetworkSettings.Networks}}"], check=True, env=podman.env,
                            capture_output=True, text=True)
    return str(json.loads(result.stdout)[podman.network]["IPAddress"])


@pytest.fixture
def address_taken() -> Iterator:
    """Puts a container of the test's own on the jobs' network at a given address, as another
    job on the restoring host may hold the address a job had on its old host."""
    podman = Podman()
    names = []

    def take(address: str, name: str) -> None:
        names.append(name)
        subprocess.run(["podman", "run", "-d", "--name", name, f"--network={podman.network}",
                        f"--ip={address}", BUSYBOX, "sleep", "600"], check=True, env=podman.env,
                       capture_output=True)

    yield take
    for name in names:
        podman.remove(name)


def test_a_job_fetches_an_object_from_s3_before_and_after_it_moves(network_fleet, address_taken):
    fleet = network_fleet
    first, second = fleet.agent("i-net-1"), fleet.agent("i-net-2")
    # Whatever the job reads, it reads over the network: presigned, as it holds no keys.
    s3 = boto3.client("s3")
    s3.put_object(Bucket=fleet.bucket, Key="reference/genome.fa", Body=b"reference v1")
    url = s3.generate_presigned_url("get_object", ExpiresIn=900, Params={
        "Bucket": fleet.bucket, "Key": "reference/genome.fa"})
    launch = fleet.launch("fetch", PYTHON, FETCHER, env={"OBJECT_URL": url})
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]

    def fetched(text):
        def seen():
            for agent in (first, second):
                agent.watch_job()
            return f"fetched {text}" in _lines(fleet, "fetch")
        return seen

    wait_for(fetched("reference v1"), 60, "the job to fetch the object")
    old_address = _address(first.podman, first.container("fetch"))
    first.handle(CheckpointCommand(taskToken="ckpt", jobId="fetch", reason="test move"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    # Changed while the job is frozen: only a fetch after the restore can see this.
    s3.put_object(Bucket=fleet.bucket, Key="reference/genome.fa", Body=b"reference v2")
    address_taken(old_address, "openfloat-ipholder-i-net-2")

    second.handle(RestoreCommand(taskToken="restore", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    assert _address(second.podman, second.container("fetch")) != old_address
    wait_for(fetched("reference v2"), 60, "the restored job to fetch the object again")
    s3.put_object(Bucket=fleet.bucket, Key="reference/genome.fa", Body=b"stop")
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    assert [line for line in _lines(fleet, "fetch") if line.startswith("fetched")] == [
        "fetched reference v1", "fetched reference v2", "fetched stop"]
    exits = [e for e in fleet.events() if e.kind == "job-exited"]
    assert [(e.instanceId, e.exitCode) for e in exits] == [("i-net-2", 0)]


class _Recorder(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address):
        self.connections: list[list[str]] = []
        self.lock = threading.Lock()
        super().__init__(address, _RecordLines)


class _RecordLines(socketserver.StreamRequestHandler):
    """Keeps each connection's lines; answers `second` with `welcome back`."""

    def handle(self):
        lines: list[str] = []
        with self.server.lock:
            self.server.connections.append(lines)
        for raw in self.rfile:
            line = raw.decode().strip()
            lines.append(line)
            if line == "second":
                self.wfile.write(b"welcome back\n")


@pytest.fixture
def tcp_server(job_network) -> Iterator[_Recorder]:
    server = _Recorder((job_network, free_port()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_open_connection_is_dropped_by_a_move_and_the_job_opens_a_new_one(fleet, tcp_server):
    first, second = fleet.agent("i-tcp-1"), fleet.agent("i-tcp-2")
    host, port = tcp_server.server_address[:2]
    launch = fleet.launch("tcp", PYTHON, CONNECTOR,
                          env={"SERVER_HOST": str(host), "SERVER_PORT": str(port)})
    first.handle(RunCommand(job=launch))

    def pinged():
        first.watch_job()
        return any(lines[:1] == ["first"] and "ping" in lines for lines in tcp_server.connections)

    wait_for(pinged, 60, "the job to connect and write on its connection")
    # The connection is open and in use as the job is checkpointed.
    first.handle(CheckpointCommand(taskToken="ckpt", jobId="tcp", reason="test move"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    second.handle(RestoreCommand(taskToken="restore", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    assert _lines(fleet, "tcp") == ["connected", "connection lost: BrokenPipeError",
                                    "reconnected, server says welcome back"]
    assert [lines[0] for lines in tcp_server.connections] == ["first", "second"]
    exits = [e for e in fleet.events() if e.kind == "job-exited"]
    assert [(e.instanceId, e.exitCode) for e in exits] == [("i-tcp-2", 0)]


def test_a_published_port_answers_again_after_the_job_moves(fleet):
    first, second = fleet.agent("i-port-1"), fleet.agent("i-port-2")
    port = free_port()
    launch = fleet.launch("counter-web", PYTHON, COUNTING_SERVER, publish=[f"{port}:8080"])
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    replies = []

    def answered():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                replies.append(reply.read().decode())
                return True
        except OSError:
            return False

    wait_for(answered, 30, "the published port to answer")
    assert answered()
    first.handle(CheckpointCommand(taskToken="ckpt", jobId="counter-web", reason="test move"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    second.handle(RestoreCommand(taskToken="restore", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(answered, 30, "the published port to answer after the move")
    # The same process, its count kept in memory, serves on.
    assert replies == ["request 1", "request 2", "request 3"]


def test_every_job_joins_the_jobs_network_and_reaches_its_gateway(fleet, job_network):
    agent = fleet.agent("i-online")
    agent.handle(RunCommand(job=fleet.launch(
        "online", BUSYBOX, "ls /sys/class/net\nip route | grep '^default'\n")))
    wait_for(lambda: agent.watch_job() or agent.job is None, 30, "the job to end")
    assert _lines(fleet, "online")[:2] == ["eth0", "lo"]
    assert _lines(fleet, "online")[2].startswith(f"default via {job_network} ")
