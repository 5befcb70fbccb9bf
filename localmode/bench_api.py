"""`make bench-api`: how the OpCenter's API and event handling hold up under load on this
machine.

1. Interruption events handled per second in-process: Spot warnings for jobs that run, each
   delivered three times in shuffled SQS batches of ten, through the EC2 events handler (moto
   in-process standing in for DynamoDB and Step Functions).
2. Against one local OpCenter (what `make run` runs: its API workers in front of one AWS
   stand-in): the latency of `GET /v1/jobs/{id}` and of a 100-job `GET /v1/jobs` with 50
   clients asking at once, each as fast as it is answered (with `GET /v1/health`, which makes
   no AWS call, for the floor), then with each client asking about a second after its answer,
   as pipelines poll their tasks. The clients are wrk's 50 connections on two threads: a client
   in Python took more than one of the two cores for itself and left the OpCenter the rest.
3. One 100-job page of each kind of listing (all jobs, by status, by two statuses, by name, by
   user, by user and status) with 100 jobs in the table and with 100,000, written into the
   table by the benchmark (ended jobs: nothing launches). The 99,900 added are newer than the
   first 100 and of other users, names and statuses, so a listing that filtered would read
   through them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from moto import mock_aws

from agent.registry import free_port
from chalicelib import events
from chalicelib.config import Config
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, JobSpec, Store
from chalicelib.wire.api import HistoryEntry, SubmitRequest
from chalicelib.wire.status import JobStatus
from localmode.atomic import atomic_requests
from localmode.demo import LocalOpCenter
from localmode.provision import provision

PASSWORD = "bench-api-admin-password"
CLIENTS = 50


def _record(runtime: Runtime, number: int, status: JobStatus, instance: str | None,
            owner: str = "admin", name: str | None = None) -> JobRecord:
    now = runtime.now_iso()
    request = SubmitRequest(image="docker.io/library/busybox:latest", jobScript="true",
                            name=name or f"bench-{number}")
    job_id = f"bench{number:07d}"
    return JobRecord(id=job_id, owner=owner, status=status, version=1, name=request.name,
                     image=request.image, imageUri=request.image, scriptKey=f"jobs/{job_id}/script",
                     spec=JobSpec.from_request(request), instanceId=instance, submitTime=now,
                     updateTime=now, history=[HistoryEntry(time=now, to=status, reason="written "
                                                           "by the benchmark")])


def _write(runtime: Runtime, store: Store, jobs: list[JobRecord]) -> None:
    """Jobs put into the table 25 at a time, as the store writes each."""
    table = runtime.config.jobs_table
    for at in range(0, len(jobs), 25):
        requests_ = [{"PutRequest": {"Item": store._job_item(job)}} for job in jobs[at:at + 25]]
        while requests_:
            answer = runtime.dynamodb.batch_write_item(RequestItems={table: requests_})
            requests_ = answer.get("UnprocessedItems", {}).get(table, [])


def events_per_second(jobs: int = 1000, copies: int = 3) -> tuple[float, int]:
    """Events handled per second, and the migrations they started."""
    saved = {name: os.environ.get(name)
             for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE")}
    for name in saved:
        os.environ.pop(name, None)
    try:
        with mock_aws(), atomic_requests():
            session = boto3.Session(region_name="us-east-1", aws_access_key_id="bench",
                                    aws_secret_access_key="bench")
            runtime = Runtime.from_config(Config.from_env(provision(session, "bench")), session)
            store = Store(runtime.dynamodb, runtime.config)
            instances = {n: f"i-{n:017x}" for n in range(jobs)}
            _write(runtime, store, [_record(runtime, n, JobStatus.EXECUTING, instance)
                                    for n, instance in instances.items()])
            bodies = [json.dumps({
                "version": "0", "id": f"evt-{instance}", "detail-type": events.SPOT_WARNING,
                "source": "aws.ec2", "account": "123456789012", "time": "2026-12-05T10:00:00Z",
                "region": "us-east-1", "resources": [],
                "detail": {"instance-id": instance, "instance-action": "terminate"}})
                for instance in instances.values() for _ in range(copies)]
            random.Random(16).shuffle(bodies)
            batches = [{"Records": [{"messageId": f"m-{at + i}", "receiptHandle": "h",
                                     "body": body, "attributes": {}, "messageAttributes": {},
                                     "eventSource": "aws:sqs"}
                                    for i, body in enumerate(bodies[at:at + 10])]}
                       for at in range(0, len(bodies), 10)]
            started = time.perf_counter()
            handled = [events.handle_ec2_messages(runtime, store, batch) for batch in batches]
            elapsed = time.perf_counter() - started
            return len(bodies) / elapsed, sum(len(h.tally.started) for h in handled)
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})


@dataclass(frozen=True)
class Load:
    answers: int
    seconds: float
    p50_ms: float
    p99_ms: float
    not_200: int


# wrk's script: each request as `ask` makes it, the figures written as JSON when done.
_WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  %(ask)s
end
delay = function()
  -- A pause drawn anew each time: polling clients are not in step.
  return %(pause_low)d > 0 and math.random(%(pause_low)d, %(pause_high)d) or 0
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"answers": %%d, "us": %%d, "p50": %%d, "p99": %%d, "status": %%d, "failed": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def under_load(url: str, token: str, ask: str, seconds: float, clients: int = CLIENTS,
               pause_ms: int = 0) -> Load:
    """`clients` connections each asking again about `pause_ms` (half to one and a half
    times, at random) after it is answered, for `seconds`; `ask` is the Lua body of wrk's
    request() that returns the request."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        script = Path(scratch) / "ask.lua"
        script.write_text(_WRK_SCRIPT % {"token": token, "ask": ask, "pause_low": pause_ms // 2,
                                         "pause_high": pause_ms * 3 // 2})
        ran = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--timeout",
                              "300s", "-s", str(script), url],
                             capture_output=True, text=True, timeout=seconds + 360)
    if ran.returncode != 0:
        raise SystemExit(f"bench-api: wrk failed ({ran.returncode}): {ran.stderr.strip()}")
    figures = json.loads(ran.stdout.strip().splitlines()[-1])
    return Load(answers=figures["answers"], seconds=figures["us"] / 1e6,
                p50_ms=figures["p50"] / 1000, p99_ms=figures["p99"] / 1000,
                not_200=figures["status"] + figures["failed"])


def _page_seconds(url: str, headers: dict[str, str], query: str, times: int = 15) -> float:
    """The median time of one 100-job page, after two pages not counted (the first reads of
    a listing warm what any later one finds warm)."""
    took = []
    with requests.Session() as session:
        for round_ in range(times + 2):
            started = time.perf_counter()
            answer = session.get(f"{url}/v1/jobs?limit=100{query}", headers=headers, timeout=300)
            if round_ >= 2:
                took.append(time.perf_counter() - started)
            if answer.status_code != 200 or len(answer.json()["items"]) != 100:
                raise SystemExit(f"bench-api: a page of jobs answered {answer.status_code}: "
                                 f"{answer.text[:300]}")
    return statistics.median(took)


def _stack_runtime(opcenter: LocalOpCenter) -> Runtime:
    """The local OpCenter's own tables, as its functions' settings name them."""
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local",
                            aws_secret_access_key="local")
    lambdas = session.client("lambda", endpoint_url=opcenter.aws_endpoint)
    function = lambdas.list_functions()["Functions"][0]
    settings = function["Environment"]["Variables"]
    os.environ["AWS_ENDPOINT_URL"] = opcenter.aws_endpoint
    return Runtime.from_config(Config.from_env(settings), session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode.bench_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15,
                        help="how long each load lasts (default 15)")
    parser.add_argument("--jobs", type=int, default=100_000,
                        help="jobs in the table for the large page (default 100,000)")
    args = parser.parse_args(argv)
    # A line per batch and per refused request would drown the figures.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("openfloat") or name.startswith("moto"):
            logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="moto")

    if shutil.which("wrk") is None:
        raise SystemExit("bench-api: wrk, the load generator, is not installed "
                         "(make bench-api installs Debian's)")
    rate, started = events_per_second()
    print(f"Interruption events handled in-process: {rate:.0f} per second "
          f"(3,000 deliveries of 1,000 warnings, {rate / 3:.0f} warnings a second; "
          f"{started} migrations started)   target >= 200")

    opcenter = LocalOpCenter.start(free_port(), PASSWORD)
    try:
        runtime = _stack_runtime(opcenter)
        store = Store(runtime.dynamodb, runtime.config)
        _write(runtime, store, [_record(runtime, n, JobStatus.COMPLETED, None, name="bench")
                                for n in range(100)])
        token = requests.post(f"{opcenter.url}/v1/login", timeout=60, json={
            "username": "admin", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = opcenter.url

        show = ('return wrk.format("GET", '
                'string.format("/v1/jobs/bench%07d", math.random(0, 99)))')
        page = 'return wrk.format("GET", "/v1/jobs?limit=100")'
        health = 'return wrk.format("GET", "/v1/health")'  # the floor: no AWS call at all
        for pause, heading in ((0, "each asking again as soon as answered"),
                               (1000, "each asking again about a second after its answer, "
                                      "as pipelines poll their tasks")):
            print(f"\n{CLIENTS} clients at once, {heading}; {args.seconds:g} s each "
                  f"(API workers: the local OpCenter's default)")
            print(f"{'request':>24} {'answers':>8} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'not 200':>8} {'target p99':>10}")
            asks = [("GET /v1/jobs/{id}", show, "100 ms"), ("GET /v1/jobs?limit=100", page, "300 ms")]
            if not pause:
                asks.append(("GET /v1/health", health, "-"))
            for name, ask, target in asks:
                load = under_load(url, token, ask, args.seconds, pause_ms=pause)
                print(f"{name:>24} {load.answers:>8} {load.answers / load.seconds:>7.1f} "
                      f"{load.p50_ms:>8.0f} {load.p99_ms:>8.0f} {load.not_200:>8} "
                      f"{target if not pause else '-':>10}")

        queries = (("all jobs", ""), ("by status", "&status=Completed"),
                   ("by two statuses", "&status=Completed,Cancelled"), ("by name", "&name=bench"),
                   ("by user", "&user=admin"), ("by user, status", "&user=admin&status=Completed"))
        small = {name: _page_seconds(url, headers, query) for name, query in queries}
        writing = time.perf_counter()
        others = (JobStatus.CANCELLED, JobStatus.FAIL_TO_COMPLETE, JobStatus.FAIL_TO_EXECUTE)
        _write(runtime, store, [_record(runtime, n, others[n % 3], None, owner=f"user{n % 50}")
                                for n in range(100, args.jobs)])
        print(f"\n({args.jobs - 100:,} more jobs written in {time.perf_counter() - writing:.0f} s)")
        large = {name: _page_seconds(url, headers, query) for name, query in queries}
        print(f"\nOne 100-job page (median of 15), 100 jobs against {args.jobs:,} in the table")
        print(f"{'listing':>16} {'100 jobs ms':>12} {f'{args.jobs:,} jobs ms':>16} {'ratio':>6} "
              f"{'target':>7}")
        for name, _ in queries:
            print(f"{name:>16} {small[name] * 1000:>12.0f} {large[name] * 1000:>16.0f} "
                  f"{large[name] / small[name]:>6.1f} {'<= 2':>7}")
    finally:
        opcenter.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
