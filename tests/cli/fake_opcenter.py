"""A fake OpCenter for the `float` tests: a real HTTP server on 127.0.0.1 that records each
request and answers with canned JSON shaped like the v1 API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "tok-3f9a-secret"
PASSWORD = "alice-password"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any
    content_type: str = "application/json"


@dataclass
class FakeOpCenter:
    """Replies are queued per (method, path); the last one queued for a route keeps answering."""

    requests: list[Recorded] = field(default_factory=list)
    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    address: str = ""

    def reply(self, method: str, path: str, body: Any, status: int = 200,
              content_type: str = "application/json") -> None:
        self.replies.setdefault((method, path), []).append(Reply(status, body, content_type))

    def answer(self, method: str, path: str) -> Reply:
        queue = self.replies.get((method, path))
        if not queue:
            return Reply(404, {"error": "NotFound", "message": f"no route {method} {path}"})
        return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(fake: FakeOpCenter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.requests.append(Recorded(
                method=self.command,
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            ))
            reply = fake.answer(self.command, url.path)
            payload = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body))
            data = payload.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving() -> Iterator[FakeOpCenter]:
    """A fake OpCenter on a free loopback port for the length of the block."""
    fake = FakeOpCenter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def job_json(job_id: str = "job-1", status: str = "Executing", **overrides: Any) -> dict[str, Any]:
    """A job as GET /v1/jobs/ID returns it."""
    job = {
        "id": job_id, "name": "align", "user": "alice", "status": status, "rc": None,
        "image": "bwa", "imageUri": "docker.io/biocontainers/bwa:0.7.17",
        "cpu": {"min": 2, "max": 8}, "mem": {"min": 4.0, "max": 4.0},
        "instType": None, "instanceId": "i-0abc", "env": {}, "customTags": {"team": "genomics"},
        "portMappings": [], "dataVolumes": [],
        "vmPolicy": {"spotOnly": False, "onDemand": False, "spotFirst": True,
                     "retryLimit": 3, "retryInterval": 600},
        "migratePolicy": None,
        "submitTime": "2024-05-01T10:00:00Z", "updateTime": "2024-05-01T10:05:00Z",
        "disableRerun": False,
        "timeLimit": None,
        "hostInitSize": None,
        "hostTerminateSize": None,
        "history": [
            {"time": "2024-05-01T10:00:00Z", "from": None, "to": "Submitted",
             "reason": "submitted", "instance": None},
            {"time": "2024-05-01T10:05:00Z", "from": "Starting", "to": "Executing",
             "reason": "container started", "instance": "i-0abc"},
        ],
        "migrations": [],
    }
    job.update(overrides)
    return job


def migration_json(**overrides: Any) -> dict[str, Any]:
    """One entry of a job's `migrations`, as the API returns it."""
    migration = {
        "time": "2024-05-01T11:00:00Z", "reason": "resumed on i-0def from its checkpoint",
        "cause": "spot terminate warning for i-0abc", "fromInstance": "i-0abc",
        "toInstance": "i-0def", "instanceType": "c5.2xlarge", "zone": "us-east-1b",
        "checkpointSeq": 1,
        "imageBytes": 512 * 1024 * 1024 + 300 * 1024, "storedBytes": 200 * 1024 * 1024,
        "freezeSeconds": 4.3,
        "checkpointSeconds": 6.0, "uploadSeconds": 12.5, "launchSeconds": 40.2,
        "downloadSeconds": 9.1, "restoreSeconds": 3.3, "secondsToExecuting": 95.0,
        "rerun": False,
    }
    migration.update(overrides)
    return migration
