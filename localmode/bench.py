"""`make bench`: what a Spot reclaim costs a job on this machine, from one run of the local
OpCenter.

1. Seconds from the warning to Executing again for jobs holding about 64 MiB, 256 MiB and 1 GiB
   of incompressible memory, split into checkpoint, upload, launch, download and restore
   (on a reclaim the launch of the replacement overlaps the checkpoint and the upload).
2. The wall time of one job (submit to Completed) reclaimed twice, against the same job left
   alone, and against a restart-from-scratch baseline: at the same two moments the job is
   cancelled and submitted again from the beginning, which is what AWS Batch or SkyPilot do for
   a job without application checkpoints.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.registry import free_port
from localmode.demo import (
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
SIZES_MIB = (64, 256, 1024)


def _seconds(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _submit(cli: Float, script: Path, steps: int, mib: int, name: str) -> str:
    return str(json.loads(cli("submit", "-i", "bench-python", "-j", str(script), "-n", name,
                              "-c", "2", "-m", "4", "-e", f"STEPS={steps}", "-e", f"MIB={mib}",
                              "--format", "json", quiet=True))["id"])


def _wall(job: dict[str, Any]) -> float:
    if job["status"] != "Completed":
        raise DemoFailed(f"job {job['id']} ended {job['status']}: {job['history'][-1]['reason']}")
    return _seconds(job["submitTime"], job["history"][-1]["time"])


def one_move(cli: Float, script: Path, mib: int, notice: int) -> dict[str, Any]:
    """Reclaim a job holding `mib` MiB once; its migration's figures."""
    job_id = _submit(cli, script, 600, mib, f"bench-{mib}")
    try:
        wait_until(f"the {mib} MiB job to run", lambda: last_step(cli.stdout(job_id)) >= 3,
                   timeout=300)
        cli("reclaim", "-j", job_id, "--notice", str(notice), quiet=True)
        job = wait_until(f"the {mib} MiB job to come back", lambda: (
            lambda j: j if j["status"] == "Executing" and j["migrations"] else None)(
            cli.job(job_id)), timeout=notice + 300)
        return dict(job["migrations"][0])
    finally:
        cli("cancel", "-j", job_id, "-f", quiet=True)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmode.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60,
                        help="seconds of work of the wall-time job (default 60)")
    parser.add_argument("--notice", type=int, default=30, help="reclaim notice (default 30 s)")
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

            print("Seconds from the Spot warning to Executing again (one reclaim each; launch "
                  "overlaps checkpoint and upload)")
            columns = ("checkpointSeconds", "uploadSeconds", "launchSeconds", "downloadSeconds",
                       "restoreSeconds", "secondsToExecuting")
            print(f"{'memory':>8} {'image MiB':>10} {'freeze':>7} {'checkpoint':>11} "
                  f"{'upload':>7} {'launch':>7} {'download':>9} {'restore':>8} {'total':>7}")
            for mib in SIZES_MIB:
                move = one_move(cli, script, mib, args.notice)
                image = (move["imageBytes"] or 0) / 2**20
                cells = " ".join(f"{move[c] if move[c] is not None else float('nan'):>{w}.2f}"
                                 for c, w in zip(columns, (11, 7, 7, 9, 8, 7), strict=True))
                print(f"{mib:>5} MiB {image:>10.1f} {move['freezeSeconds'] or 0:>7.2f} {cells}",
                      flush=True)

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
        except DemoFailed as failure:
            print(f"bench failed: {failure}", file=sys.stderr)
            return 1
        finally:
            if opcenter is not None:
                opcenter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
