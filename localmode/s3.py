"""S3, locally: the checksum a client sends with an object is checked, as S3 checks it, while
inside `faithful_s3()`.

S3 computes the SHA-256 (or SHA-1, CRC32) of the bytes it received and refuses the request with
BadDigest when it differs from the `x-amz-checksum-*` header; moto stores whatever arrived. The
agent relies on that refusal for a checkpoint part changed on its way, so here it happens too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response
from moto.s3.utils import compute_checksum

_CHECKED = ("SHA256", "SHA1", "CRC32")


class BadDigest(S3ClientError):
    def __init__(self, algorithm: str) -> None:
        super().__init__("BadDigest", f"The {algorithm} you specified did not match the "
                                      "calculated checksum.")


@contextmanager
def faithful_s3() -> Iterator[None]:
    original = S3Response._get_checksum

    def get_checksum(self: Any, response_headers: dict[str, Any]) -> tuple[str, str | None]:
        for algorithm in _CHECKED:
            sent = self.headers.get(f"x-amz-checksum-{algorithm.lower()}")
            if not sent:
                continue
            computed = compute_checksum(self.raw_body, algorithm=algorithm)
            received = computed.decode() if isinstance(computed, bytes) else str(computed)
            if received != sent:
                raise BadDigest(algorithm)
        return original(self, response_headers)

    S3Response._get_checksum = get_checksum  # type: ignore[method-assign]
    try:
        yield
    finally:
        S3Response._get_checksum = original  # type: ignore[method-assign]
