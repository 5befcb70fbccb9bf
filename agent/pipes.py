"""A file that another party writes, read while it is written: a named pipe.

podman writes a checkpoint archive only to a path. Given a pipe there, the agent uploads the
archive while podman is still writing it, and nothing of it lands on disk.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

T = TypeVar("T")


class Writer(Generic[T]):
    """What the writer did: its value once it has ended, or its exception raised again."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self, timeout: float | None = None) -> T:
        if not self.ended.wait(timeout):
            raise TimeoutError("the writer of the pipe has not ended")
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@contextmanager
def written_by(path: Path, write: Callable[[Path], T],
               buffer: int = 1024 * 1024) -> Iterator[tuple[BinaryIO, Writer[T]]]:
    """Make `path` a named pipe, run `write(path)` in a thread, and yield the pipe's reading
    end with the writer's outcome. The stream ends when the writer has ended, whether or not
    it ever opened the pipe: the reader is never left waiting on a writer that failed first.
    """
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    # Opened without waiting for a writer; a write end of our own then keeps the stream from
    # ending before the real writer opens it, and is closed once the writer has ended.
    reading = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    holding = os.open(path, os.O_WRONLY)
    fcntl.fcntl(reading, fcntl.F_SETFL, fcntl.fcntl(reading, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    outcome: Writer[T] = Writer()

    def run() -> None:
        try:
            outcome.value = write(path)
        except BaseException as error:  # noqa: BLE001 - handed to whoever asks for the result
            outcome.error = error
        finally:
            os.close(holding)
            outcome.ended.set()

    thread = threading.Thread(target=run, name=f"writer of {path.name}", daemon=True)
    try:
        stream = os.fdopen(reading, "rb", buffering=buffer)
    except BaseException:
        os.close(reading)
        os.close(holding)
        raise
    thread.start()
    try:
        with stream:
            yield stream, outcome
    finally:
        thread.join()
        path.unlink(missing_ok=True)
