"""The instance metadata service as the agent reads it (IMDSv2): who am I, and is a reclaim or
a rebalance coming. The address is configurable so the local mode can serve its own."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from pydantic import BaseModel

AWS_IMDS = "http://169.254.169.254"
_TOKEN_TTL = 21600


class InstanceAction(BaseModel):
    """`spot/instance-action`: what AWS will do to the instance, and when."""

    action: str
    time: str


class ImdsUnavailable(Exception):
    """The metadata service did not answer."""


@dataclass
class Imds:
    base_url: str = AWS_IMDS
    timeout: float = 2.0
    _token: str | None = None
    _token_expires: float = 0.0

    def _request(self, method: str, path: str, headers: dict[str, str]) -> bytes | None:
        request = urllib.request.Request(self.base_url.rstrip("/") + path, method=method,
                                         headers=headers)
        # Link-local or loopback only: a proxy must never see the instance's metadata.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            if error.code == 401:
                self._token = None
            raise ImdsUnavailable(f"{method} {path}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ImdsUnavailable(f"{method} {path}: {error}") from None

    def _session_token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            body = self._request("PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": str(_TOKEN_TTL)})
            if not body:
                raise ImdsUnavailable("the metadata service handed out no token")
            self._token = body.decode().strip()
            self._token_expires = time.monotonic() + _TOKEN_TTL - 60
        return self._token

    def get(self, path: str) -> str | None:
        """A metadata value under /latest/meta-data/, or None where the service has none."""
        body = self._request("GET", f"/latest/meta-data/{path}",
                             {"X-aws-ec2-metadata-token": self._session_token()})
        return None if body is None else body.decode()

    def instance_id(self) -> str:
        value = self.get("instance-id")
        if not value:
            raise ImdsUnavailable("the metadata service does not know this instance's id")
        return value

    def instance_action(self) -> InstanceAction | None:
        body = self.get("spot/instance-action")
        return None if body is None else InstanceAction.model_validate(json.loads(body))

    def rebalance_notice(self) -> str | None:
        body = self.get("events/recommendations/rebalance")
        return None if body is None else str(json.loads(body)["noticeTime"])
