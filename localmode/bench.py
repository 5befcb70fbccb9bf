"""`make bench`: what a Spot reclaim costs a job on this machine, from one run of the local
OpCenter.

1. Seconds from the warning (AWS's 120 s notice by default) to Executing again for jobs holding
   64 MiB to 4 GiB of incompressible memory, and 1 GiB of memory that compresses (sequencing
   reads), split into checkpoint, upload, launch, download and restore (on a reclaim the launch
   of the replacement overlaps the checkpoint and the upload; the upload overlaps the
   checkpoint, and its figure is what was left to store once the archive was written). The
   checkpoint's rate, from the freeze to the commit in S3, is set against a raw CRIU dump of
   the same process to local disk (runc checkpoint, the job left running) measured just before.
   A move that fell back to a rerun prints "rerun" and why, never a time.
2. The wall time of one job (submit to Completed) reclaimed twice, against the same job left
   alone, and against a restart-from-scratch baseline: at the same two moments the job is
   cancelled and submitted again from the beginning, which is what AWS Batch or SkyPilot do for
   a job without application checkpoints.
3. What periodic checkpoints cost: the running time (Executing to Completed) of a job holding
   256 MiB run with `--checkpointInterval 60s`, against the same job run without.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.podman import podman_environment
from agent.registry import free_port
from localmode.demo import (
    FINAL,
    JOB_SCRIPT,
    PYTHON_IMAGE,
    DemoFailed,
    Float,
    LocalOpCenter,
    final_job,
    last_step,
    reached,
    run_job_through_reclaims,
    wait_until,
)

PASSWORD = "bench-admin-password"
# (MiB of memory, what fills it)
JOBS = ((64, "random"), (256, "random"), (1024, "random"), (4096, "random"), (1024, "reads"))
MB = 1e6


def _seconds(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _submit(cli: Float, script: Path, steps: int, mib: int, name: str,
            fill: str = "random", *extra: str) -> str:
    # Room for the state and the interpreter (a job outgrowing its instance is OOM-killed): a
    # 2-vCPU type of 4 GiB, or r5.large's 16 for more than 1 GiB.
    memory = 4 if mib <= 1024 else 16
    return str(json.loads(cli("submit", "-i", "bench-python", "-j", str(script), "-n", name,
                              "-c", "2", "-m", str(memory), "-e", f"STEPS={steps}",
                              "-e", f"MIB={mib}", "-e", f"FILL={fill}", *extra,
                              "--format", "json", quiet=True))["id"])


def _wall(job: dict[str, Any]) -> float:
    if job["status"] != "Completed":
        raise DemoFailed(f"job {job['id']} ended {job['status']}: {job['history'][-1]['reason']}")
    return _seconds(job["submitTime"], job["history"][-1]["time"])


def _running(cli: Float, job_id: str) -> bool:
    """Whether the job is at its third step; DemoFailed once it has ended instead."""
    job = cli.job(job_id)
    if job["status"] in FINAL:
        raise DemoFailed(f"job {job_id} ended {job['status']}: {job['history'][-1]['reason']}")
    return last_step(cli.stdout(job_id)) >= 3


def raw_dump(job_id: str, scratch: Path) -> tuple[int, float]:
    """A raw CRIU dump of the job's container to local disk, the job left running: runc
    checkpoint, as podman calls it, without archive or upload. (bytes written, seconds)."""
    env = podman_environment()
    found = subprocess.run(["podman", "ps", "--no-trunc", "--filter",
                            f"name=openfloat-{job_id}-", "--format", "{{.ID}}"],
                           env=env, capture_output=True, text=True, check=True).stdout.split()
    if len(found) != 1:
        raise DemoFailed(f"job {job_id} has {len(found)} running containers, not one")
    images, work = scratch / "raw-dump", scratch / "raw-dump-work"
    for directory in (images, work):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
    started = time.monotonic()
    dumped = subprocess.run(["runc", "checkpoint", "--leave-running", "--image-path", str(images),
                             "--work-path", str(work), "--file-locks", "--tcp-established",
                             "--ext-unix-sk", "--manage-cgroups-mode", "soft", found[0]],
                            env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if dumped.returncode != 0:
        log = work / "dump.log"
        last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1] \
            if log.exists() else dumped.stderr.strip()
        raise DemoFailed(f"runc checkpoint of job {job_id} failed: {last}")
    size = sum(path.stat().st_size for path in images.iterdir())
    shutil.rmtree(images, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return size, seconds


def one_move(cli: Float, script: Path, mib: int, fill: str, notice: int,
             scratch: Path) -> tuple[dict[str, Any], tuple[int, float], str | None]:
    """Reclaim a job holding `mib` MiB of `fill` once: its migration's figures, the raw dump
    measured just before, and why it was rerun if it was."""
    job_id = _submit(cli, script, 600, mib, f"bench-{mib}-{fill}", fill)
    try:
        wait_until(f"the {mib} MiB job to run", functools.partial(_running, cli, job_id),
                   timeout=300 + mib // 20)
        raw = raw_dump(job_id, scratch)
        cli("reclaim", "-j", job_id, "--notice", str(notice), quiet=True)
        job = wait_until(f"the {mib} MiB job to come back", lambda: (
            lambda j: j if j["status"] == "Executing" and j["migrations"] else None)(
            cli.job(job_id)), timeout=notice + 300)
        move = dict(job["migrations"][0])
        why = None
        if move["rerun"]:
            failed = [h["reason"] for h in job["history"] if "checkpoint" in h["reason"].lower()]
            why = failed[0] if failed else move["reason"]
        return move, raw, why
    finally:
        cli("cancel", "-j", job_id, "-f", quiet=True)


def _figure(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def print_move(mib: int, fill: str, move: dict[str, Any], raw: tuple[int, float],
               why: str | None) -> None:
    label = f"{mib:>5} MiB {fill:<6}"
    raw_rate = raw[0] / raw[1] / MB if raw[1] > 0 else 0.0
    if why is not None:
        print(f"{label} rerun: {why} (raw CRIU dump {raw_rate:.0f} MB/s)", flush=True)
        return
    image, stored = move["imageBytes"] or 0, move["storedBytes"] or 0
    to_commit = (move["checkpointSeconds"] or 0) + (move["uploadSeconds"] or 0)
    rate = image / to_commit / MB if to_commit > 0 else 0.0
    cells = " ".join(_figure(move[c], w) for c, w in (
        ("freezeSeconds", 6), ("checkpointSeconds", 10), ("uploadSeconds", 6),
        ("launchSeconds", 6), ("downloadSeconds", 8), ("restoreSeconds", 7),
        ("secondsToExecuting", 6)))
    print(f"{label} {image / 2**20:>9.0f} {stored / 2**20:>9.0f} {cells} {rate:>7.0f} "
          f"{raw_rate:>7.0f} {rate / raw_rate if raw_rate else 0:>5.2f}", flush=True)


def restart_from_scratch(cli: Float, script: Path, steps: int, at_steps: tuple[int, ...]) -> float:
    """Wall time when each reclaim loses the work: cancel at those steps and submit again."""
    started: str | None = None
    for attempt, at in enumerate((*at_steps, None)):
        job_id = _submit(cli, script, steps, 64, f"bench-restart-{attempt}")
        started = started or cli.job(job_id)["submitTime"]
        if at is None:
            final = final_job(cli, job_id, timeout=steps * 3 + 300)
            _wall(final)
            return _seconds(started, final["history"][-1]["time"])
        wait_until(f"step {at}", functools.partial(reached, cli, job_id, at),
                   timeout=steps * 3 + 300, poll=0.5)
        cli("cancel", "-j", job_id, "-f", quiet=True)
    raise AssertionError("unreachable")


def _running_time(job: dict[str, Any]) -> float:
    """Seconds from the job's first Executing to Completed: its own run, without the launch of
    its instance, which varies more than what is measured."""
    _wall(job)
    started = next(h["time"] for h in job["history"] if h["to"] == "Executing")
    return _seconds(started, job["history"][-1]["time"])


def periodic_overhead(cli: Float, script: Path, steps: int, mib: int,
                      interval: int) -> None:
    """Print the running time of one job run with periodic checkpoints and without."""
    times: list[float] = []
    taken = 0
    for extra in ((), ("--checkpointInterval", f"{interval}s")):
        job = final_job(cli, _submit(cli, script, steps, mib, f"bench-periodic-{len(times)}",
                                     "random", *extra), timeout=steps * 3 + 300)
        times.append(_running_time(job))
        if extra:
            taken = (job.get("lastCheckpoint") or {}).get("seq", 0)
            if not taken:
                raise DemoFailed(f"job {job['id']} ran {times[-1]:.0f} s with --checkpointInterval "
                                 f"{interval}s and no checkpoint was committed")
    print(f"\nRunning time of one {steps} s job holding {mib} MiB (Executing to Completed)")
    print(f"  no periodic checkpoints:                {times[0]:7.1f} s", flush=True)
    print(f"  --checkpointInterval {interval}s:            {times[1]:7.1f} s   "
          f"overhead {(times[1] / times[0] - 1) * 100:+.1f} % (last checkpoint: {taken})",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60,
                        help="seconds of work of the wall-time job (default 60)")
    parser.add_argument("--periodic-steps", type=int, default=180,
                        help="seconds of work of the periodic-checkpoint job (default 180)")
    parser.add_argument("--notice", type=int, default=120,
                        help="reclaim notice (default 120 s, as AWS gives)")
    args = parser.parse_args(argv)
    opcenter: LocalOpCenter | None = None
    with tempfile.TemporaryDirectory(prefix="openfloat-bench-") as scratch:
        script = Path(scratch) / "work.py"
        script.write_text(JOB_SCRIPT)
        try:
            opcenter = LocalOpCenter.start(free_port(), PASSWORD)
            cli = Float(Path(scratch) / "config", echo=False)
            cli("login", "-a", opcenter.url, "-u", "admin", "-p", PASSWORD)
            cli("image", "add", "bench-python", PYTHON_IMAGE)

            print(f"Seconds from the Spot warning ({args.notice} s notice) to Executing again, "
                  "one reclaim each; MB/s from the freeze to the commit in S3, against a raw "
                  "CRIU dump of the same process to local disk")
            print(f"{'memory':>16} {'image MiB':>9} {'stored':>9} {'freeze':>6} "
                  f"{'checkpoint':>10} {'upload':>6} {'launch':>6} {'download':>8} "
                  f"{'restore':>7} {'total':>6} {'MB/s':>7} {'raw':>7} {'ratio':>5}")
            for mib, fill in JOBS:
                print_move(mib, fill, *one_move(cli, script, mib, fill, args.notice,
                                                Path(scratch)))

            print(f"\nWall time of one {args.steps} s job holding 64 MiB (submit to Completed)")
            alone = _wall(final_job(cli, _submit(cli, script, args.steps, 64, "bench-alone"),
                                    timeout=args.steps * 3 + 300))
            print(f"  uninterrupted:                {alone:7.1f} s   1.00", flush=True)
            # Reclaimed at a third and at two thirds of the work, in both runs.
            moments = (args.steps // 3, 2 * args.steps // 3)
            moved = run_job_through_reclaims(cli, "bench-python", steps=args.steps, mib=64,
                                             reclaims=2, notice=args.notice,
                                             say=lambda text: None, name="bench-moved",
                                             at_steps=moments)
            reclaimed = _wall(moved)
            print(f"  2 reclaims, checkpointed:     {reclaimed:7.1f} s   {reclaimed / alone:.2f}",
                  flush=True)
            restarted = restart_from_scratch(cli, script, args.steps, moments)
            print(f"  2 reclaims, restarted anew:   {restarted:7.1f} s   {restarted / alone:.2f}",
                  flush=True)
            periodic_overhead(cli, script, args.periodic_steps, 256, 60)
        except DemoFailed as failure:
            print(f"bench failed: {failure}", file=sys.stderr)
            return 1
        finally:
            if opcenter is not None:
                opcenter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
