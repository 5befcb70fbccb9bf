"""How each part of a checkpoint is stored: compressed or not, chosen by measuring the part.

Memory is often incompressible (numeric arrays, already-compressed data) and a reclaim leaves two
minutes: compressing random bytes only spends the window. Each part is probed on a sample: when
a fast codec cannot shrink it, it is stored as it is; otherwise the codec that moves the part
soonest is used, counting both the CPU it costs on this host and the bytes left to upload at the
rate uploads are going.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import lz4.frame
import zstandard

# Below this ratio a part is worth compressing at all.
WORTHWHILE = 0.9
_SAMPLE = 1024 * 1024


@dataclass(frozen=True)
class Codec:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


def _zstd(level: int) -> Codec:
    # A compressor object is not safe to share between threads; one per call is cheap.
    return Codec(f"zstd-{level}",
                 lambda data: zstandard.ZstdCompressor(level=level).compress(data),
                 lambda data: zstandard.ZstdDecompressor().decompress(data))


def _as_is(data: bytes) -> bytes:
    return data


NONE = Codec("none", _as_is, _as_is)
LZ4 = Codec("lz4", lambda data: lz4.frame.compress(data, compression_level=0,
                                                   block_size=lz4.frame.BLOCKSIZE_MAX4MB),
            lz4.frame.decompress)
CANDIDATES = (LZ4, _zstd(1), _zstd(3))
CODECS = {codec.name: codec for codec in (NONE, *CANDIDATES)}


def codec_named(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown compression {name!r}") from None


class Throughput:
    """The rate, in bytes a second, that uploads reach the store together: bytes stored over
    the time any upload was in flight. Starts from a guess until a part has been stored."""

    def __init__(self, guess: float) -> None:
        self._lock = threading.Lock()
        self._bytes = 0
        self._busy = 0.0
        self._in_flight = 0
        self._since = 0.0
        self._guess = guess

    def started(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.monotonic()
            self._in_flight += 1

    def finished(self, stored: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._bytes += stored
            if self._in_flight == 0:
                self._busy += time.monotonic() - self._since

    def rate(self) -> float:
        with self._lock:
            busy = self._busy + (time.monotonic() - self._since if self._in_flight else 0.0)
            return self._bytes / busy if self._bytes and busy > 0 else self._guess


def choose(part: bytes, upload_rate: float, cores: int) -> Codec:
    """The codec that stores `part` soonest: none when a sample does not shrink below
    WORTHWHILE, else the candidate with the least CPU time (spread over `cores`) plus upload
    time for what it leaves, both measured on the sample."""
    if len(part) <= _SAMPLE:
        sample = part
    else:  # from the middle: a part often begins with headers unlike the pages that follow
        start = (len(part) - _SAMPLE) // 2
        sample = part[start:start + _SAMPLE]
    if not sample:
        return NONE
    best, best_cost = NONE, len(sample) / upload_rate
    for codec in CANDIDATES:
        started = time.perf_counter()
        stored = len(codec.compress(sample))
        spent = time.perf_counter() - started
        if codec is LZ4 and stored / len(sample) >= WORTHWHILE:
            return NONE  # the fastest codec cannot shrink it: the others will not pay either
        cost = spent / max(1, cores) + stored / upload_rate
        if cost < best_cost:
            best, best_cost = codec, cost
    return best
