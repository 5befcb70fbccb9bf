"""`make demo`: a job whose state lives only in memory survives two Spot reclaims, on this machine.

It starts the local OpCenter, submits a Python job that keeps rewriting a 64 MiB buffer and
folding it into a running digest (nothing on disk), reclaims the job's instance twice while it
runs (the real-shaped warning, then the instance killed when the notice runs out), and checks
that the job comes back each time and ends Completed with the digest an uninterrupted run gives.
Then it prints the job's timeline and stops everything it started. Every step is the `float`
command a user would type, printed as it runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from agent.podman import Podman
from agent.registry import free_port

ROOT = Path(__file__).resolve().parent.parent
FLOAT = Path(sys.executable).parent / "float"
PYTHON_IMAGE = "localhost/openfloat/python:local"
FINAL = frozenset({"Completed", "FailToComplete", "FailToExecute", "CheckpointFailed",
                   "NoAvailableHost", "Cancelled", "Timedout"})

# The job: all of its state is in memory. SLEEP=0 runs the same work at full speed, which is
# how the expected result is computed here.
JOB_SCRIPT = '''\
#!/usr/bin/env python3
import hashlib, os, random, time
steps = int(os.environ.get("STEPS", "90"))
pause = float(os.environ.get("SLEEP", "1"))
size = int(os.environ.get("MIB", "64")) * 1024 * 1024
rng = random.Random(2026)
state = bytearray(size)  # filled in place: a copy would need twice the memory
if os.environ.get("FILL", "random") == "reads":
    # Sequencing reads, as a genomics step holds them: a checkpoint of this compresses.
    reads = bytes(rng.choices(b"ACGT\\n", weights=(30, 30, 30, 30, 1), k=1 << 20))
    for mib in range(size >> 20):
        turn = rng.randrange(1 << 20)
        state[mib << 20:(mib + 1) << 20] = reads[turn:] + reads[:turn]
else:
    # Random bytes: a checkpoint of this state does not compress away.
    for mib in range(size >> 20):
        state[mib << 20:(mib + 1) << 20] = rng.randbytes(1 << 20)
digest = hashlib.sha256()
for step in range(1, steps + 1):
    offset = (step * 7919 * 4096) % (size - 4096)
    block = hashlib.sha256(bytes(state[offset:offset + 4096]) + step.to_bytes(4, "big")).digest()
    state[offset:offset + 32] = block
    digest.update(block)
    print(f"step {step}/{steps}", flush=True)
    time.sleep(pause)
print(f"result {digest.hexdigest()}", flush=True)
'''


def expected_result(steps: int, mib: int, fill: str = "random") -> str:
    """The digest an uninterrupted run of the job prints."""
    env = {**os.environ, "STEPS": str(steps), "SLEEP": "0", "MIB": str(mib), "FILL": fill}
    out = subprocess.run([sys.executable, "-c", JOB_SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout
    return _result(out) or ""


def _result(stdout: str) -> str | None:
    found = re.findall(r"(?m)^result ([0-9a-f]{64})$", stdout)
    return found[-1] if found else None


class DemoFailed(RuntimeError):
    pass


@dataclass
class LocalOpCenter:
    """`python -m localmode` as a child process, stopped (Ctrl-C) on `stop()`."""

    process: subprocess.Popen[str]
    url: str
    aws_endpoint: str
    output: deque[str]

    @classmethod
    def start(cls, port: int, admin_password: str, timeout: float = 90,
              settings: dict[str, str] | None = None) -> LocalOpCenter:
        env = {**os.environ, "OPENFLOAT_ADMIN_PASSWORD": admin_password, "PYTHONUNBUFFERED": "1",
               **(settings or {})}
        env.pop("AWS_ENDPOINT_URL", None)
        env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        process = subprocess.Popen([sys.executable, "-m", "localmode", "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        banner: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and "stop with Ctrl-C" not in "".join(banner):
            line = process.stdout.readline()
            if not line:
                break
            banner.append(line)
        text = "".join(banner)
        url = re.search(r"running at (http://127\.0\.0\.1:\d+)", text)
        aws = re.search(r"\(moto\) at (http://127\.0\.0\.1:\d+)", text)
        if not (url and aws):
            process.kill()
            raise DemoFailed(f"the local OpCenter did not start:\n{text}")
        opcenter = cls(process, url.group(1), aws.group(1), deque(banner, maxlen=400))
        # Keep reading its output so it never blocks on a full pipe; the tail is kept.
        threading.Thread(target=opcenter._drain, daemon=True).start()
        return opcenter

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def live_instances(self, job_id: str | None = None) -> list[str]:
        """Instances pending or running in the OpCenter's EC2 (of one job, or all)."""
        ec2 = boto3.client("ec2", endpoint_url=self.aws_endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        if job_id is not None:
            filters.append({"Name": "tag:openfloat:job", "Values": [job_id]})
        found = ec2.describe_instances(Filters=filters)["Reservations"]
        return [i["InstanceId"] for r in found for i in r["Instances"]]

    @staticmethod
    def containers_of(job_id: str) -> list[str]:
        return [name for name in Podman().containers_named("")
                if name.startswith(f"openfloat-{job_id}-")]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return "stopped" if self.process.returncode == 0 else f"exit {self.process.returncode}"


class Float:
    """Runs `float` as a user would, printing each command when `echo` is on."""

    def __init__(self, config_dir: Path, echo: bool = True) -> None:
        self.env = {**os.environ, "FLOAT_CONFIG_DIR": str(config_dir)}
        self.echo = echo

    def __call__(self, *args: str, quiet: bool = False) -> str:
        if self.echo and not quiet:
            print("$ float " + " ".join(_shown(a) for a in args), flush=True)
        result = subprocess.run([str(FLOAT), *args], env=self.env, capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            raise DemoFailed(f"float {args[0]} failed: {result.stderr.strip()}")
        if self.echo and not quiet:
            print(result.stdout.rstrip(), flush=True)
        return result.stdout

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(json.loads(self("show", "-j", job_id, "--format", "json", quiet=True)))

    def stdout(self, job_id: str) -> str:
        try:
            return self("log", "-j", job_id, "cat", "stdout", quiet=True)
        except DemoFailed:
            return ""  # nothing written yet


def _shown(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./\[\]-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def wait_until(what: str, check: Callable[[], Any], timeout: float, poll: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def last_step(stdout: str) -> int:
    steps = re.findall(r"(?m)^step (\d+)/", stdout)
    return int(steps[-1]) if steps else 0


def run_job_through_reclaims(cli: Float, image: str, *, steps: int, mib: int, reclaims: int,
                             notice: int, say: Callable[[str], None] = print,
                             name: str = "demo",
                             at_steps: tuple[int, ...] | None = None,
                             submit_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Submit the in-memory job (with `submit_flags` added), reclaim its instance `reclaims`
    times while it runs (at those steps, or 5 steps apart), and return it once final. Raises
    DemoFailed when anything is not as it should be."""
    with tempfile.TemporaryDirectory(prefix="openfloat-demo-") as scratch:
        script = Path(scratch) / "work.py"
        script.write_text(JOB_SCRIPT)
        job_id = json.loads(cli("submit", "-i", image, "-j", str(script), "-n", name,
                                "-c", "2", "-m", "4", "-e", f"STEPS={steps}", "-e", f"MIB={mib}",
                                *submit_flags, "--format", "json", quiet=True))["id"]
    say(f"submitted job {job_id}: {steps} steps over a {mib} MiB in-memory state")
    at_least = at_steps[0] if at_steps else 5
    for number in range(1, reclaims + 1):
        job = wait_until("the job to be Executing",
                         functools.partial(_executing, cli, job_id, number - 1), timeout=300)
        before = wait_until(f"the job to reach step {at_least}",
                            functools.partial(reached, cli, job_id, at_least), timeout=120)
        say(f"reclaim {number}: {job['instanceId']} at step {before}")
        cli("reclaim", "-j", job_id, "--notice", str(notice), "--format", "table")
        moved = wait_until("the job to come back on a new instance",
                           functools.partial(_executing, cli, job_id, number),
                           timeout=notice + 240)
        if moved["instanceId"] == job["instanceId"]:
            raise DemoFailed(f"job {job_id} is still on {job['instanceId']} after the reclaim")
        say(f"back: Executing on {moved['instanceId']}")
        at_least = at_steps[number] if at_steps and number < len(at_steps) else before + 5
    return final_job(cli, job_id, timeout=steps * 3 + 300)


def reached(cli: Float, job_id: str, step: int) -> int | None:
    """The job's last step, once it is `step` or later."""
    last = last_step(cli.stdout(job_id))
    return last if last >= step else None


def _executing(cli: Float, job_id: str, migrations: int) -> dict[str, Any] | None:
    job = cli.job(job_id)
    if job["status"] in FINAL:
        raise DemoFailed(f"job {job_id} ended {job['status']}: {job['history'][-1]['reason']}")
    if job["status"] == "Executing" and len(job["migrations"]) >= migrations:
        return job
    return None


def _ended(cli: Float, job_id: str) -> dict[str, Any] | None:
    job = cli.job(job_id)
    return job if job["status"] in FINAL else None


def final_job(cli: Float, job_id: str, timeout: float) -> dict[str, Any]:
    """The job once it is in a final status."""
    return dict(wait_until(f"job {job_id} to end", functools.partial(_ended, cli, job_id),
                           timeout=timeout))


def check_result(cli: Float, job: dict[str, Any], steps: int, expected: str,
                 reclaims: int) -> None:
    """The job ended Completed with the uninterrupted result, each step done once, and one
    migration per reclaim."""
    stdout = cli.stdout(job["id"])
    if job["status"] != "Completed":
        raise DemoFailed(f"job {job['id']} ended {job['status']}: {job['history'][-1]['reason']}")
    done = [int(s) for s in re.findall(r"(?m)^step (\d+)/", stdout)]
    # Output still in the pipe at a freeze may show twice; a restart would start from 1 again.
    if sorted(set(done)) != list(range(1, steps + 1)) or done.count(1) != 1:
        raise DemoFailed(f"job {job['id']} did not run each step once: {done}")
    if _result(stdout) != expected:
        raise DemoFailed(f"job {job['id']} printed {_result(stdout)}, expected {expected}")
    if len(job["migrations"]) != reclaims or any(m["rerun"] for m in job["migrations"]):
        raise DemoFailed(f"job {job['id']} has migrations {job['migrations']}")


def cost_line(job: dict[str, Any]) -> str:
    """What the job's three instances cost, and what Spot saved against On-demand."""
    saved = job.get("savings")
    if not job.get("cost") or not saved:
        raise DemoFailed(f"job {job['id']} has no cost: {job.get('cost')!r}, {saved!r}")
    percent = f", {saved['savingsPercent']:g}%" if saved.get("savingsPercent") is not None else ""
    return (f"job {job['id']} cost {job['cost']} on Spot; On-demand it would have cost "
            f"{saved['onDemandCost']}: saved {saved['savings']}{percent} (local prices: "
            "moto's Spot price and a rule-of-thumb On-demand price)")


def leftovers(opcenter: LocalOpCenter, job_id: str) -> list[str]:
    """Agents of the OpCenter or containers of the job still on this machine."""
    # The agents' command queues live in the OpCenter's own AWS stand-in.
    port = opcenter.aws_endpoint.rsplit(":", 1)[1]
    agents = subprocess.run(["pgrep", "-f", rf"-m agent .*127\.0\.0\.1:{port}/"],
                            capture_output=True, text=True, check=False).stdout.split()
    found = [f"agent process {pid}" for pid in agents]
    found += [f"container {name}" for name in (opcenter.containers_of(job_id) if job_id else [])]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--steps", type=int, default=90, help="seconds of work (default 90)")
    parser.add_argument("--notice", type=int, default=20,
                        help="seconds between each warning and the instance's end (default 20)")
    args = parser.parse_args(argv)
    port = args.port or free_port()
    opcenter: LocalOpCenter | None = None
    job_id = ""
    costs = ""
    password = "demo-admin-password"
    with tempfile.TemporaryDirectory(prefix="openfloat-demo-cli-") as config:
        try:
            print(f"== starting the local OpCenter on port {port}", flush=True)
            opcenter = LocalOpCenter.start(port, password)
            cli = Float(Path(config))
            cli("login", "-a", opcenter.url, "-u", "admin", "-p", password)
            cli("image", "add", "demo-python", PYTHON_IMAGE)
            print("== computing the result an uninterrupted run gives", flush=True)
            expected = expected_result(args.steps, 64)
            print("== running the job through two reclaims", flush=True)
            # Reclaimed a third and two thirds of the way through its work.
            job = run_job_through_reclaims(cli, "demo-python", steps=args.steps, mib=64,
                                           reclaims=2, notice=args.notice,
                                           say=lambda text: print(f"== {text}", flush=True),
                                           at_steps=(args.steps // 3, 2 * args.steps // 3))
            job_id = job["id"]
            check_result(cli, job, args.steps, expected, reclaims=2)
            print(f"== job {job_id} Completed with {expected}, the result of an "
                  "uninterrupted run, after two reclaims", flush=True)
            cli("show", "-j", job_id, "--format", "table")
            live = wait_until("every instance to be released",
                              lambda: not opcenter.live_instances() or None, timeout=30)
            del live
            costs = cost_line(cli.job(job_id))
        except DemoFailed as failure:
            print(f"demo failed: {failure}", file=sys.stderr, flush=True)
            if opcenter is not None:
                print("the local OpCenter's last lines:\n" + "".join(opcenter.output)[-6000:],
                      file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("demo interrupted", file=sys.stderr, flush=True)
            return 130
        finally:
            if opcenter is not None:
                print(f"== stopping the local OpCenter: {opcenter.stop()}", flush=True)
    assert opcenter is not None
    left = leftovers(opcenter, job_id)
    if left:
        print(f"demo failed: left behind: {', '.join(left)}", file=sys.stderr)
        return 1
    print("== nothing left behind: no agent, no container, no instance", flush=True)
    print(f"== {costs}", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
