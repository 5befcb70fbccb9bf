"""The license on the local OpCenter, through `float` as an admin uses it: without one a new
job waits WaitingForLicense, and it runs once a license issued for this OpCenter is applied;
a finished job shows what it cost against On-demand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localmode.demo import ROOT, DemoFailed, final_job, wait_until
from tests.e2e.conftest import python_image

SCRIPT = "#!/bin/sh\necho licensed\n"


def _issue(issuer_key: Path, opcenter: str, out: Path, *terms: str) -> Path:
    subprocess.run([sys.executable, "-m", "infra.license", "issue", "--key", str(issuer_key),
                    "--opcenter", opcenter, "--customer", "e2e", "--out", str(out), *terms],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return out


def test_a_job_waits_for_a_license_and_runs_once_one_is_applied(
        local, admin_cli, issuer_key, tmp_path):
    info = json.loads(admin_cli("license", "info", "--format", "json"))
    assert info["status"] == "valid" and info["hold"] is None
    opcenter = info["opcenter"]
    admin_cli("license", "remove", "-f")
    try:
        script = tmp_path / "job.sh"
        script.write_text(SCRIPT)
        job_id = json.loads(admin_cli("submit", "-i", python_image(admin_cli), "-j", str(script),
                                      "-c", "1", "-m", "1", "--format", "json"))["id"]
        waiting = admin_cli.job(job_id)
        assert waiting["status"] == "WaitingForLicense", waiting["history"]
        assert "no license is applied" in waiting["history"][-1]["reason"]

        # Another OpCenter's license is refused, and the job goes on waiting.
        other = _issue(issuer_key, "123456789012:us-east-1:elsewhere", tmp_path / "other.json",
                       "--plan", "enterprise", "--contract", "E-1")
        with pytest.raises(DemoFailed, match="is for OpCenter 123456789012:us-east-1:elsewhere, "
                                             "not this one"):
            admin_cli("license", "apply", str(other))
        assert admin_cli.job(job_id)["status"] == "WaitingForLicense"
    finally:
        mine = _issue(issuer_key, opcenter, tmp_path / "mine.json", "--plan", "pro",
                      "--quota", "100000", "--price", "0.01", "--days", "30")
        applied = json.loads(admin_cli("license", "apply", str(mine), "--format", "json"))
    assert applied["status"] == "valid" and applied["plan"] == "pro"
    job = final_job(admin_cli, job_id, timeout=240)
    assert job["status"] == "Completed", job["history"]
    assert [h["to"] for h in job["history"]][:3] == ["Submitted", "WaitingForLicense",
                                                     "Submitted"]
    assert admin_cli.stdout(job_id).strip() == "licensed"
    # Its instance released, the job shows what it cost, and what On-demand would have.
    priced = wait_until("the job's cost", lambda: (
        lambda shown: shown if shown.get("cost") and shown.get("savings") else None)(
            admin_cli.job(job_id)), timeout=60)
    assert priced["cost"].endswith(" USD") and priced["savings"]["onDemandCost"].endswith(" USD")
    used = json.loads(admin_cli("license", "info", "--format", "json"))
    assert float(used["coreHoursUsed"]) > 0
