"""`float license apply|info|remove` against the fake OpCenter."""

from __future__ import annotations

import json

LICENSE = {"license": {"id": "lic-1", "customer": "Genome Lab", "plan": "pro",
                       "coreHourQuota": 500, "pricePerCoreHour": "0.012",
                       "start": "2026-12-01T00:00:00Z", "end": "2027-12-01T00:00:00Z",
                       "opcenter": "123456789012:us-east-1:openfloat",
                       "issued": "2026-11-30T00:00:00Z"},
           "signature": "c2lnbmF0dXJl"}
SHOWN = {"opcenter": "123456789012:us-east-1:openfloat", "id": "lic-1",
         "customer": "Genome Lab", "plan": "pro", "start": "2026-12-01T00:00:00Z",
         "end": "2027-12-01T00:00:00Z", "appliedTime": "2026-12-02T10:00:00Z",
         "appliedBy": "admin", "status": "valid", "month": "2026-12", "coreHoursUsed": "12.5",
         "coreHourQuota": 500, "coreHoursLeft": "487.5", "pricePerCoreHour": "0.012"}


def test_apply_sends_the_file_as_it_is_and_shows_the_license(logged_in, run, tmp_path):
    path = tmp_path / "lic.json"
    path.write_text(json.dumps(LICENSE))
    logged_in.reply("PUT", "/v1/license", SHOWN)

    result = run("license", "apply", str(path), "-F", "table")

    assert result.code == 0, result.err
    [sent] = logged_in.requests
    assert (sent.method, sent.path, sent.body) == ("PUT", "/v1/license", LICENSE)
    lines = dict(line.split(":", 1) for line in result.out.splitlines())
    assert lines["LICENSE"].strip() == "lic-1" and lines["STATUS"].strip() == "valid"
    assert lines["USED"].strip() == "12.5 core-hours in 2026-12 of 500 (487.5 left)"


def test_a_file_that_is_not_a_license_is_refused_before_any_request(logged_in, run, tmp_path):
    missing = run("license", "apply", str(tmp_path / "none.json"))
    assert missing.code != 0 and "cannot read the license" in missing.err
    garbage = tmp_path / "garbage"
    garbage.write_text("not json")
    refused = run("license", "apply", str(garbage))
    assert refused.code != 0 and refused.err.strip() == f"float: {garbage} is not a license: " \
                                                        "it is not JSON"
    assert len(refused.err.strip().splitlines()) == 1
    assert logged_in.requests == []


def test_the_servers_refusal_is_one_line(logged_in, run, tmp_path):
    path = tmp_path / "lic.json"
    path.write_text(json.dumps(LICENSE))
    logged_in.reply("PUT", "/v1/license", {
        "error": "BadRequest", "field": "signature",
        "message": "license lic-1 does not carry a valid signature of this OpCenter's license "
                   "issuer"}, status=400)

    result = run("license", "apply", str(path))

    assert result.code != 0 and "does not carry a valid signature" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_info_without_a_license_says_why_new_jobs_wait(logged_in, run):
    logged_in.reply("GET", "/v1/license", {
        "opcenter": "123456789012:us-east-1:openfloat", "status": "none", "month": "2026-12",
        "coreHoursUsed": "0", "hold": "no license is applied to this OpCenter"})

    result = run("license", "info", "-F", "table")

    assert result.code == 0, result.err
    lines = {k: v.strip() for k, v in (line.split(":", 1) for line in result.out.splitlines())}
    assert lines["LICENSE"] == "none"
    assert lines["NEW JOBS"] == "wait: no license is applied to this OpCenter"


def test_remove_with_force_removes(logged_in, run):
    logged_in.reply("DELETE", "/v1/license", {
        "opcenter": "x", "status": "none", "month": "2026-12", "coreHoursUsed": "0"})

    result = run("license", "remove", "-f", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "none"
    assert [(r.method, r.path) for r in logged_in.requests] == [("DELETE", "/v1/license")]


def test_report_usage_asks_for_the_month_and_user_and_totals_them(logged_in, run):
    logged_in.reply("GET", "/v1/reports/usage", {
        "month": "2026-11", "coreHours": "6.0000", "users": [
            {"user": "alice", "coreHours": "4.0000", "instanceSeconds": 7200, "jobs": 2},
            {"user": "bob", "coreHours": "2.0000", "instanceSeconds": 3600, "jobs": 1}]})

    result = run("report", "usage", "--month", "2026-11", "-F", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[-1].query == {"month": "2026-11"}
    lines = result.out.splitlines()
    assert lines[0] == "2026-11"
    assert lines[1].split() == ["USER", "CORE-HOURS", "JOBS", "INSTANCE", "SECONDS"]
    assert lines[-1].split() == ["TOTAL", "6.0000", "3", "10800"]


def test_report_cost_prints_spend_against_on_demand(logged_in, run):
    logged_in.reply("GET", "/v1/reports/cost", {
        "month": "2026-11", "coreHours": "4.0000", "cost": "0.000040 USD",
        "onDemandCost": "0.170000 USD", "savings": "0.169960 USD", "users": [
            {"user": "alice", "coreHours": "4.0000", "instanceSeconds": 7200, "jobs": 1,
             "cost": "0.000040 USD", "onDemandCost": "0.170000 USD",
             "savings": "0.169960 USD", "unpricedSeconds": 0}]})

    result = run("report", "cost", "--user", "alice", "-F", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[-1].query == {"user": "alice"}
    lines = result.out.splitlines()
    assert lines[2].split() == ["alice", "0.000040", "USD", "0.170000", "USD", "0.169960", "USD",
                                "4.0000", "-"]


def test_show_has_the_cost_line(logged_in, run):
    from tests.cli.fake_opcenter import job_json

    logged_in.reply("GET", "/v1/jobs/job-1", job_json(
        status="Completed", rc=0, cost="0.0017 USD",
        savings={"onDemandCost": "0.0140 USD", "savings": "0.0123 USD",
                 "savingsPercent": 87.9, "unpricedSeconds": 0}))

    table = run("show", "-j", "job-1", "-F", "table")
    plain = run("show", "-j", "job-1")

    [line] = [line for line in table.out.splitlines() if line.startswith("COST:")]
    assert line.split(None, 1)[1] == "0.0017 USD (On-demand 0.0140 USD: saved 0.0123 USD, 87.9%)"
    # The YAML carries MMCloud's own line.
    assert "cost: 0.0017 USD" in plain.out.splitlines()
