"""Deciding which log bytes go out as which part, and which parts make up a stream."""

from agent.logs import K8sLine, parse_k8s_file, plan_parts, resume_positions
from chalicelib.wire.logs import (
    EpochOpening,
    LogPart,
    current_parts,
    listed,
    next_epoch,
    opening_key,
    part_key,
)

STAMP = b"2026-11-25T10:00:00.000000000+00:00"


def line(stream: str, flag: str, text: str) -> bytes:
    return STAMP + f" {stream} {flag} {text}\n".encode()


def part(epoch: int, start: int, end: int, size: int = 1) -> LogPart:
    return LogPart(key=f"{epoch}/{start}-{end}", epoch=epoch, start=start, end=end, size=size)


def opening(epoch: int, start: int) -> EpochOpening:
    return EpochOpening(key=f"{epoch}/from-{start}", epoch=epoch, start=start)


def test_partial_lines_join_the_next_and_full_lines_end_with_a_newline():
    data = line("stdout", "P", "hal") + line("stdout", "F", "f done") + line("stderr", "F", "")
    lines = parse_k8s_file(data, offset=100)
    assert b"".join(x.text for x in lines if x.stream == "stdout") == b"half done\n"
    assert [x.text for x in lines if x.stream == "stderr"] == [b"\n"]
    first = len(line("stdout", "P", "hal"))
    assert [x.offset for x in lines] == [100, 100 + first, 100 + first + len(line("stdout", "F", "f done"))]


def test_a_carriage_return_stays_inside_its_line_and_junk_lines_are_skipped():
    data = line("stdout", "F", "10%\r20%\r30%") + b"garbage\n" + line("other", "F", "x")
    assert [x.text for x in parse_k8s_file(data)] == [b"10%\r20%\r30%\n"]


def test_a_last_line_without_its_newline_is_not_parsed():
    data = line("stdout", "F", "done") + line("stdout", "F", "half")[:-3]
    assert [x.text for x in parse_k8s_file(data)] == [b"done\n"]


def test_each_stream_with_new_lines_gets_one_part_covering_the_bytes_read():
    lines = [K8sLine(10, "stdout", b"a\n"), K8sLine(20, "stderr", b"oops\n"),
             K8sLine(30, "stdout", b"b\n")]
    parts, positions = plan_parts(lines, {"stdout": 10, "stderr": 10}, end=40)
    assert [(p.stream, p.start, p.end, p.body) for p in parts] == [
        ("stdout", 10, 40, b"a\nb\n"), ("stderr", 10, 40, b"oops\n")]
    assert positions == {"stdout": 40, "stderr": 40}


def test_a_silent_stream_gets_no_part_but_moves_on():
    parts, positions = plan_parts([K8sLine(0, "stdout", b"a\n")], {"stdout": 0, "stderr": 0}, 9)
    assert [p.stream for p in parts] == ["stdout"]
    assert positions["stderr"] == 9


def test_lines_a_stream_already_shipped_are_not_planned_again_and_parts_go_in_order():
    lines = [K8sLine(0, "stdout", b"old\n"), K8sLine(5, "stderr", b"late\n"),
             K8sLine(10, "stdout", b"new\n")]
    parts, _ = plan_parts(lines, {"stdout": 10, "stderr": 5}, end=15)
    assert [(p.stream, p.start, p.body) for p in parts] == [
        ("stderr", 5, b"late\n"), ("stdout", 10, b"new\n")]


def test_a_takeover_resumes_each_stream_after_its_last_part():
    current = {"stdout": [part(1, 0, 50), part(1, 50, 90)], "stderr": [part(1, 0, 70)]}
    assert resume_positions(current, carried=90) == {"stdout": 90, "stderr": 70}


def test_a_stream_that_said_nothing_resumes_where_the_last_part_of_any_began():
    current = {"stdout": [part(1, 0, 50), part(1, 50, 90)], "stderr": []}
    assert resume_positions(current, carried=120) == {"stdout": 90, "stderr": 50}


def test_parts_beyond_what_the_file_carried_are_dropped():
    current = {"stdout": [part(1, 0, 50), part(1, 50, 90)], "stderr": [part(1, 60, 90)]}
    assert resume_positions(current, carried=70) == {"stdout": 50, "stderr": 0}


def test_a_fresh_log_starts_every_stream_at_zero():
    current = {"stdout": [part(1, 0, 50)], "stderr": [part(1, 0, 50)]}
    assert resume_positions(current, carried=0) == {"stdout": 0, "stderr": 0}


def test_a_stream_reads_its_epochs_in_order_each_earlier_one_up_to_where_the_next_begins():
    items = [opening(1, 0), part(1, 0, 50), part(1, 50, 90), part(1, 90, 120),
             opening(2, 90), part(2, 90, 130), opening(3, 130), part(3, 130, 140)]
    assert [(p.epoch, p.start) for p in current_parts(items)] == [
        (1, 0), (1, 50), (2, 90), (3, 130)]


def test_an_epoch_that_begins_at_zero_hides_everything_before_it_even_before_its_first_part():
    items = [opening(1, 0), part(1, 0, 50), opening(2, 0)]
    assert current_parts(items) == []
    assert current_parts([*items, part(2, 0, 30)]) == [part(2, 0, 30)]


def test_a_late_part_of_an_earlier_epoch_does_not_show():
    items = [opening(1, 0), part(1, 0, 50), opening(2, 50), part(2, 50, 60), part(1, 50, 80)]
    assert [(p.epoch, p.start) for p in current_parts(items)] == [(1, 0), (2, 50)]


def test_keys_sort_in_the_order_they_are_read_and_read_back_as_written():
    keys = [part_key("j", "stdout", 2, 9, 10), part_key("j", "stdout", 1, 10, 200),
            part_key("j", "stdout", 1, 9, 10), opening_key("j", "stdout", 1, 0)]
    assert sorted(keys) == [keys[2], keys[1], keys[3], keys[0]]
    parsed = [listed("j", "stdout", key) for key in keys]
    assert [(p.epoch, p.start) for p in parsed] == [(2, 9), (1, 10), (1, 9), (1, 0)]
    assert listed("j", "stdout", part_key("j", "stderr", 1, 0, 1)) is None
    assert listed("j", "stdout", "jobs/j/logs/stdout/notes.txt") is None
    assert next_epoch(parsed) == 3 and next_epoch([]) == 1


def test_a_slice_is_cut_before_a_character_its_end_splits():
    from chalicelib.logs import _complete_utf8

    text = "größe€".encode()
    assert _complete_utf8(text) == len(text)
    assert _complete_utf8(text[:-1]) == len(text) - 3  # inside the three bytes of €
    assert _complete_utf8(text[:3]) == 2  # inside ö
    assert _complete_utf8(b"") == 0 and _complete_utf8(b"plain") == 5
