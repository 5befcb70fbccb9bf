"""Each checkpoint part is stored compressed only where that pays, by measurement."""

import os
from typing import get_args

from agent.compression import CODECS, NONE, Throughput, choose
from chalicelib.wire.checkpoints import CheckpointPart

MIB = 2**20
TEXT = b"".join(b"read %08d ACGTTGCAAGGCTTAC quality 40\n" % n for n in range(100_000))


def test_every_codec_the_agent_stores_with_is_one_a_manifest_may_name():
    assert set(CODECS) == set(get_args(CheckpointPart.model_fields["compression"].annotation))


def test_random_memory_is_stored_as_it_is_at_any_upload_rate():
    part = os.urandom(4 * MIB)
    for rate in (10e6, 200e6, 5e9):
        assert choose(part, rate, cores=2) is NONE


def test_compressible_memory_is_compressed_and_comes_back_whole():
    part = TEXT[:4 * MIB]
    codec = choose(part, 200e6, cores=2)
    assert codec is not NONE
    stored = codec.compress(part)
    assert len(stored) < len(part) / 4 and codec.decompress(stored) == part


def test_with_an_upload_far_faster_than_any_codec_nothing_is_compressed():
    # A link that stores bytes faster than the CPU can shrink them gains nothing from it.
    assert choose(TEXT[:4 * MIB], 1e15, cores=1) is NONE


def test_the_upload_rate_is_the_one_measured_once_a_part_is_stored():
    rate = Throughput(guess=123.0)
    assert rate.rate() == 123.0
    rate.started()
    rate.started()
    rate.finished(50 * MIB)
    rate.finished(50 * MIB)
    measured = rate.rate()
    assert measured != 123.0 and measured > 100 * MIB  # two parts in next to no time
