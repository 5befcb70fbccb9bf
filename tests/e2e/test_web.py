"""The web interface in headless Chromium against the shared local OpCenter, as a person uses
it: log in, submit through the form (and run the command line it shows with `float`), watch
the job run, see it move when its instance is reclaimed, see its CPU and memory drawn, cancel
it; add a private image without its token ever reaching the page; and, at an admin's first
login to an OpCenter without a license, apply one. Screenshots go to build/test-artifacts/web."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from localmode.demo import Float, LocalOpCenter
from tests.e2e.browser import LAPTOP, PHONE, Watched, chromium
from tests.e2e.conftest import PASSWORD, python_image
from tests.e2e.test_licenses import _issue

# Long enough to be reclaimed and moved while it runs; cancelled long before it ends.
SCRIPT = ("#!/bin/sh\ni=0\nwhile [ $i -lt 1800 ]; do echo \"tick $i\"; i=$((i+1)); sleep 1; "
          "done\n")
# What a job is, whichever way it was submitted (not its id, times, status or instances).
SAME = ("image", "imageUri", "cpu", "mem", "instType", "name", "env", "customTags", "dataVolumes",
        "vmPolicy", "migratePolicy", "disableRerun", "timeLimit", "gpu", "zone", "securityGroups",
        "rootVolSize", "imageVolSize", "disableMigrate", "privileged", "withRoot", "containerOpts",
        "dirMaps", "hostInitSize", "hostTerminateSize", "user")
STARTS = 240_000  # ms: a job reaches Executing on a busy machine within this
MOVES = 240_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def web(browser: Browser, local: LocalOpCenter) -> Iterator[Watched]:
    context = browser.new_context(viewport=LAPTOP, base_url=local.url)
    watched = Watched(context.new_page())
    try:
        yield watched
    finally:
        context.close()


def _log_in(page: Page, username: str = "admin", password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def _moves(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("table", has=page.locator("caption", has_text="Moves from one instance")
                        ).locator("tbody tr")


def test_a_job_from_the_form_runs_moves_when_reclaimed_and_is_cancelled(
        web: Watched, admin_cli: Float, tmp_path: Path) -> None:
    page = web.page
    image = python_image(admin_cli)
    _log_in(page)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.get_by_role("link", name="Submit Job").click()

    script_file = tmp_path / "job.sh"
    page.get_by_label("Image", exact=True).fill(image)
    page.get_by_label("Script", exact=True).first.fill(SCRIPT)
    page.get_by_label("File name on the command line").first.fill(str(script_file))
    page.get_by_label("Job name").fill("from the web form")
    page.get_by_label("vCPUs").fill("1:2")
    page.get_by_label("Memory (GB)").fill("1")
    page.get_by_label("Environment").fill("GREETING=hello world\nQUOTED=it's $HOME")
    page.get_by_label("Custom tags").fill("team:web")
    page.get_by_label("Time limit").fill("30m")
    page.get_by_text("Policies", exact=True).click()
    page.get_by_label("VM policy").fill("[spotFirst=true,retryLimit=2]")
    page.get_by_label("Migrate policy (WaveRider)").fill("[enable=false]")
    command = page.locator("#command")
    expect(command).to_contain_text("--migratePolicy '[enable=false]'")
    line = command.text_content() or ""
    assert line.startswith(f"float submit -i {image} -j {script_file} -n 'from the web form' "
                           "-c 1:2 -m 1 -e 'GREETING=hello world' "), line
    # A line with a mistake says so at once and names the field.
    page.get_by_label("Custom tags").fill("team:web\nno separator")
    expect(page.locator("#command-problem")).to_contain_text('"no separator" is not key:value')
    expect(page.get_by_label("Custom tags")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Custom tags").fill("team:web")
    expect(command).to_have_text(line)
    web.shot("submit-form")

    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/jobs/\w+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#notice")).to_contain_text(f"Job {job_id} is submitted.")

    # The line shown, run with float, makes an equal job.
    script_file.write_text(SCRIPT)
    words = shlex.split(line)
    assert words[:2] == ["float", "submit"]
    twin = json.loads(admin_cli(*words[1:], "--format", "json"))
    admin_cli("cancel", "-j", twin["id"], "-f")
    from_page = admin_cli.job(job_id)
    assert {key: twin[key] for key in SAME} == {key: from_page[key] for key in SAME}
    assert from_page["env"] == {"GREETING": "hello world", "QUOTED": "it's $HOME"}
    assert from_page["vmPolicy"]["retryLimit"] == 2 and from_page["timeLimit"] == 1800

    facts = page.locator(".facts")
    expect(facts.locator(".status")).to_have_text("Executing", timeout=STARTS)
    expect(page.locator("#log")).to_contain_text("tick 1", timeout=60_000)
    first_instance = admin_cli.job(job_id)["instanceId"]
    web.shot("job-executing")

    admin_cli("reclaim", "-j", job_id)
    expect(_moves(page)).to_have_count(1, timeout=MOVES)
    expect(_moves(page).first).to_contain_text(first_instance)
    expect(_moves(page).first).to_contain_text("spot terminate warning")
    expect(facts.locator(".status")).to_have_text("Executing", timeout=MOVES)
    moved = admin_cli.job(job_id)
    assert moved["instanceId"] != first_instance and len(moved["migrations"]) == 1
    expect(facts).to_contain_text(moved["instanceId"])

    # The graph: a CPU and a memory line, each through the heartbeats' samples (two instances'
    # worth by now, or at least two samples).
    samples = json.loads(admin_cli("top", "-j", job_id, "--format", "json"))
    expect(page.locator("#graph g.series.cpu circle.point").nth(1)).to_be_attached(timeout=90_000)
    expect(page.locator("#graph g.series.mem circle.point").nth(1)).to_be_attached()
    drawn = page.locator("#graph g.series.cpu").get_attribute("data-points")
    assert drawn is not None and int(drawn) >= 2, (drawn, samples)
    assert "," in (page.locator("#graph g.series.mem polyline").get_attribute("points") or "")
    web.shot("job-moved")

    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name=f"Yes, cancel {job_id}").click()
    expect(facts.locator(".status")).to_have_text("Cancelled", timeout=120_000)
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert admin_cli.job(job_id)["status"] == "Cancelled"
    web.shot("job-cancelled")

    # The list shows it, with a filter, live.
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Status").select_option("Cancelled")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#jobs-table")).to_contain_text(job_id)
    expect(page.locator("#jobs-table")).not_to_contain_text("Executing")
    assert web.errors == []


def test_a_private_image_is_added_and_its_token_never_reaches_the_page(web: Watched) -> None:
    page = web.page
    token = "web-registry-token-5d41402abc4b2a76"
    _log_in(page)
    page.get_by_role("link", name="App Library").click()
    page.get_by_label("Name", exact=True).fill("web-private")
    page.get_by_label("Image URI").fill("localhost/openfloat/python:local")
    page.get_by_label("Registry username (private images)").fill("robot")
    page.get_by_label("Registry token (private images)").fill(token)
    page.get_by_role("button", name="Add image").click()
    expect(page.locator("#notice")).to_contain_text("Image web-private is added as a private image")
    row = page.locator("#images tr", has_text="web-private")
    expect(row).to_contain_text("private")
    web.shot("library-private-image")
    # Nowhere: not in the markup, not in any field, not in what the page keeps.
    assert token not in page.content()
    assert token not in page.evaluate(
        "[...document.querySelectorAll('input, textarea')].map(e => e.value).join(' ')")
    assert token not in page.evaluate("JSON.stringify({...sessionStorage, ...localStorage})")
    row.get_by_role("button", name="Change web-private").click()
    assert token not in page.content()
    row.get_by_role("button", name="Delete web-private").click()
    row.get_by_role("button", name="Really delete web-private?").click()
    expect(page.locator("#images")).not_to_contain_text("web-private")
    # Logging out revokes the session's token at the OpCenter: a copy of it is refused.
    kept = page.evaluate("sessionStorage.getItem('openfloat.token')")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#notice")).to_contain_text("Logged out.")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    refused = page.request.get("v1/whoami", headers={"Authorization": f"Bearer {kept}"})
    assert refused.status == 401 and "logging out" in refused.json()["message"]
    assert web.errors == []


def test_an_admin_first_logging_in_without_a_license_applies_one(
        web: Watched, admin_cli: Float, issuer_key: Path, tmp_path: Path) -> None:
    page = web.page
    opcenter = json.loads(admin_cli("license", "info", "--format", "json"))["opcenter"]
    license_file = _issue(issuer_key, opcenter, tmp_path / "license.json", "--plan",
                          "pro", "--quota", "50000", "--price", "0.02", "--days", "30")
    admin_cli("license", "remove", "-f")
    try:
        _log_in(page)
        prompt = page.locator("#license-prompt")
        expect(prompt).to_contain_text("This OpCenter has no license")
        expect(prompt).to_contain_text(opcenter)
        expect(page.get_by_role("heading", name="License", exact=True)).to_be_visible()
        web.shot("license-prompt")
        page.get_by_label("License file").set_input_files(str(license_file))
        expect(page.get_by_label("Or paste it")).to_have_value(license_file.read_text())
        page.get_by_role("button", name="Apply license").click()
        expect(page.locator("#notice")).to_contain_text("(pro) is applied")
        facts = page.locator("#license-facts")
        expect(facts).to_contain_text("valid")
        expect(facts).to_contain_text("0.02")
        expect(facts).to_contain_text("of 50000 core-hours")
        expect(prompt).to_have_count(0)
        web.shot("license-applied")
    finally:
        if json.loads(admin_cli("license", "info", "--format", "json"))["status"] == "none":
            admin_cli("license", "apply", str(license_file))
    applied = json.loads(admin_cli("license", "info", "--format", "json"))
    assert applied["status"] == "valid" and applied["coreHourQuota"] == 50000
    assert web.errors == []


def test_every_page_is_readable_at_phone_width(browser: Browser, local: LocalOpCenter) -> None:
    context = browser.new_context(viewport=PHONE, base_url=local.url)
    try:
        web = Watched(context.new_page())
        _log_in(web.page)
        for name in ("Jobs", "Submit Job", "App Library", "Cost Summary", "License", "Users"):
            web.page.get_by_role("link", name=name, exact=True).click()
            expect(web.page.get_by_role("heading", name=name, exact=True)).to_be_visible()
            expect(web.page.locator("main")).not_to_contain_text("Loading…")
            assert web.fits_its_width(), f"{name} is wider than a phone"
            web.shot(f"phone-{name}")
        # The cost summary draws its months as bars.
        web.page.get_by_role("link", name="Cost Summary").click()
        expect(web.page.locator("svg.chart rect.bar")).not_to_have_count(0)
        assert web.errors == []
    finally:
        context.close()
