"""The web interface's files as the API serves them, and the page's tables that must say what
the API and the CLI say (statuses, submit options). The page itself is driven in a browser by
tests/e2e/test_web.py."""

from __future__ import annotations

import argparse
import re

from chalicelib import web
from chalicelib.wire.api import SubmitRequest
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus
from cli.main import build_parser

IMPORT = re.compile(r'from\s+"\./([\w-]+\.js)"')
LINKED = re.compile(r'(?:href|src)="(ui/[\w.-]+)"')


def _source(name: str) -> str:
    return (web.ASSETS / name).read_text(encoding="utf-8")


def _js_list(source: str, name: str) -> list[str]:
    found = re.search(rf"export const {name} = \[(.*?)\];", source, re.S)
    assert found, f"{name} is not in the script"
    return re.findall(r'"(\w+)"', found.group(1))


def test_the_page_is_served_to_anyone_with_a_policy_that_runs_only_its_own_scripts(client):
    response = client.http.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.body.decode()
    assert '<base href="/">' in page
    # Every file the page links, and every module those scripts import, is served.
    wanted = set(LINKED.findall(page))
    assert {"ui/app.js", "ui/style.css"} <= wanted
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        seen.add(name)
        served = client.http.get(f"/{name}")
        assert served.status_code == 200, name
        expected = "text/javascript" if name.endswith(".js") else "text/css" if name.endswith(
            ".css") else "image/svg+xml"
        assert served.headers["Content-Type"].startswith(expected), name
        assert "Content-Security-Policy" in served.headers
        if name.endswith(".js"):
            wanted |= {f"ui/{module}" for module in IMPORT.findall(served.body.decode())} - seen
    assert {"ui/jobs.js", "ui/submit.js", "ui/chart.js", "ui/library.js", "ui/admin.js",
            "ui/costs.js"} <= seen


def test_under_an_api_gateway_stage_the_page_resolves_everything_against_the_stage():
    assert '<base href="/api/">' in web.page("api").body


def test_a_name_that_is_not_one_of_the_files_is_not_found(client):
    for name in ("nothing.js", "index.html", "..%2Fapp.py", "web.py"):
        response = client.http.get(f"/ui/{name}")
        assert response.status_code == 404, name
        assert "the web interface has no file" in response.json_body["message"]


def test_the_page_knows_every_job_status_and_which_are_final():
    source = _source("jobs.js")
    assert _js_list(source, "STATUSES") == [status.value for status in JobStatus]
    assert sorted(_js_list(source, "FINAL")) == sorted(s.value for s in TERMINAL_STATUSES)


def test_the_submit_form_has_every_submit_field_under_the_flag_float_submit_takes():
    options = re.findall(r'key: "(\w+)", flag: "([^"]+)"', _source("submit.js"))
    keys = [key for key, _ in options]
    assert sorted(keys) == sorted(SubmitRequest.model_fields)
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    submit = commands.choices["submit"]
    destinations = {flag: action.dest for action in submit._actions for flag in action.option_strings}
    for key, flag in options:
        assert flag in destinations, f"float submit has no {flag} (for {key})"
