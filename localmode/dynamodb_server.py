"""DynamoDB's own endpoint in the local AWS stand-in: moto's DynamoDB, served on connections
that stay open.

moto's server closes the connection after every answer (werkzeug does, on purpose), so each
DynamoDB call an API worker made cost a new TCP connection, a new server thread, and a walk
through Flask and moto's host dispatcher. DynamoDB is what every API request reads, so it gets
an endpoint of its own (`AWS_ENDPOINT_URL_DYNAMODB`; the SDK picks it over AWS_ENDPOINT_URL
for DynamoDB alone): HTTP/1.1 with keep-alive, one thread per connection, each request made
into moto's own request and handed to its DynamoDB handler, as the in-process mock does once
it has matched the URL, so the same backend answers it with the same code and the same
atomic_requests() lock. Everything else, and DynamoDB asked at the main endpoint, is still
served by moto's own server.
"""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from moto.core.exceptions import HTTPException
from moto.core.request import normalize_request
from moto.dynamodb.responses import DynamoHandler

logger = logging.getLogger("openfloat.localmode.dynamodb")

# The region signed into the request's credential scope: .../20261207/us-east-1/dynamodb/...
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/dynamodb/")
_DEFAULT_REGION = "us-east-1"
# DynamoDB's own limit on a request is far below this; anything larger is not DynamoDB.
_MAX_BODY = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the connection stays open between calls
    # An answer is written as headers, then body: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers, 40 ms a call on an open connection.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > _MAX_BODY:
            # The body's end is unknown: nothing more can be read on this connection.
            self._answer(411 if length is None else 413, {"Connection": "close"}, b"")
            self.close_connection = True
            return
        body = self.rfile.read(int(length))
        scope = _SCOPE.search(self.headers.get("Authorization", ""))
        region = scope.group(1) if scope else _DEFAULT_REGION
        headers = HTTPHeaders()
        for name, value in self.headers.items():
            headers[name] = value
        request = normalize_request(AWSPreparedRequest(
            method="POST", url=f"https://dynamodb.{region}.amazonaws.com/", headers=headers,
            body=body, stream_output=False))
        try:
            status, answer_headers, answer_body = DynamoHandler.dispatch(
                request, request.raw_url, request.headers)
        except HTTPException as refusal:  # as moto's own dispatch answers one
            status, answer_headers, answer_body = (refusal.code, dict(refusal.get_headers()),
                                                   refusal.get_body())
        except Exception:  # noqa: BLE001 - the SDK sees a 500 and retries, as with DynamoDB
            logger.exception("the local DynamoDB failed a request")
            self._answer(500, {"Content-Type": "application/x-amz-json-1.0"},
                         b'{"__type":"com.amazonaws.dynamodb#InternalServerError",'
                         b'"message":"the local DynamoDB failed this request"}')
            return
        self._answer(status, answer_headers,
                     answer_body.encode() if isinstance(answer_body, str) else answer_body)

    def _answer(self, status: int, headers: dict[str, Any], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers.items():
            if name.lower() not in ("status", "content-length", "transfer-encoding"):
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return  # one line per call would drown the OpCenter's output


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.connections = 0  # accepted so far

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)


class DynamoDBServer:
    """moto's DynamoDB at http://host:port/ on a thread of this process."""

    def __init__(self, host: str, port: int) -> None:
        self._server = _Server((host, port))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="dynamodb",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def connections(self) -> int:
        """Connections accepted so far: a client that keeps its connection open adds one."""
        return self._server.connections

    def start(self) -> DynamoDBServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
