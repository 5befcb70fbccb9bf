"""Shipping a container's stdout and stderr to S3 while it runs, so `float log` can read them.

podman writes the container's output in the k8s-file format (`TIME STREAM P|F TEXT`), and a
checkpoint carries that file along, so a restored container's log already holds everything the
job printed on earlier instances. The shipper keeps each stream's S3 object equal to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

STREAMS = ("stdout", "stderr")


def parse_k8s_file(text: str) -> dict[str, str]:
    """Split k8s-file lines into the text of each stream (P lines carry no newline)."""
    out = {stream: [] for stream in STREAMS}  # type: dict[str, list[str]]
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[1] not in out:
            continue
        content = parts[3] if len(parts) == 4 else ""
        out[parts[1]].append(content + ("\n" if parts[2] == "F" else ""))
    return {stream: "".join(chunks) for stream, chunks in out.items()}


class LogShipper:
    def __init__(self, s3: Any, bucket: str, job_id: str, log_path: Path) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._job_id = job_id
        self._log_path = log_path
        self._lock = threading.Lock()
        self._shipped = dict.fromkeys(STREAMS, "")

    def key(self, stream: str) -> str:
        return f"jobs/{self._job_id}/logs/{stream}"

    def ship(self) -> None:
        """Upload each stream whose content grew since the last call."""
        with self._lock:
            try:
                text = self._log_path.read_text(errors="replace")
            except FileNotFoundError:
                return
            for stream, content in parse_k8s_file(text).items():
                if content == self._shipped[stream]:
                    continue
                self._s3.put_object(Bucket=self._bucket, Key=self.key(stream),
                                    Body=content.encode(),
                                    ContentType="text/plain; charset=utf-8")
                self._shipped[stream] = content
