"""A per-instance metadata service on loopback, answering the IMDSv2 paths the agent reads, so
that a local instance can be told it is being reclaimed exactly as EC2 tells a real one."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalImds:
    def __init__(self, instance_id: str, instance_type: str = "local.container",
                 zone: str = "us-east-1a", host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._values: dict[str, str] = {
            "instance-id": instance_id,
            "instance-type": instance_type,
            "placement/availability-zone": zone,
            # A local instance's addresses are the machine's.
            "local-ipv4": host,
        }
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalImds:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def mark_reclaim(self, when: datetime, action: str = "terminate") -> None:
        """From now on `spot/instance-action` says the instance goes at `when`."""
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._values["spot/instance-action"] = json.dumps({"action": action, "time": stamp})

    def mark_rebalance(self, when: datetime) -> None:
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._values["events/recommendations/rebalance"] = json.dumps({"noticeTime": stamp})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/latest/api/token" or not self.headers.get(
                        "X-aws-ec2-metadata-token-ttl-seconds"):
                    self._reply(400)
                    return
                token = secrets.token_urlsafe(24)
                with imds._lock:
                    imds._tokens.add(token)
                self._reply(200, token)

            def do_GET(self) -> None:  # noqa: N802
                with imds._lock:
                    authorised = self.headers.get("X-aws-ec2-metadata-token") in imds._tokens
                    value = imds._values.get(self.path.removeprefix("/latest/meta-data/"))
                if not authorised:
                    self._reply(401)
                elif value is None or not self.path.startswith("/latest/meta-data/"):
                    self._reply(404)
                else:
                    self._reply(200, value)

        return Handler
