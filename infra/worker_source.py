"""The worker image's source archive: what a worker holds in /opt/openfloat (the agent, the
wire models and the `float` CLI it imports or runs, their requirements, the host setup), packed
byte-for-byte the same for the same files, so its digest names one build.

    python -m infra.worker_source OUT_DIR     prints the archive's path and its SHA-256
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_NAME = "openfloat-worker.tar.gz"
# Directories shipped whole; `python3 -m agent` imports chalicelib only through its package
# __init__ and wire/, and runs `python3 -m cli` for a job's own float calls.
TREES = ("agent", "chalicelib/wire", "cli")
FILES = ("chalicelib/__init__.py", "requirements-agent.txt", "constraints.txt",
         "infra/worker-setup.sh", "infra/worker-check.sh")
_SKIPPED_PARTS = {"__pycache__"}


def members(root: Path = ROOT) -> list[Path]:
    """Every file of the archive, relative to root, sorted."""
    found = [Path(name) for name in FILES]
    for tree in TREES:
        for path in (root / tree).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and not _SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                found.append(relative)
    missing = [str(p) for p in found if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"worker source: missing {', '.join(missing)}")
    return sorted(set(found))


def build(out_dir: Path, root: Path = ROOT) -> tuple[Path, str]:
    """Write the archive into out_dir; its path and SHA-256 (hex). Names, modes and order come
    from the files; owners, times and gzip's header are fixed, so equal files give equal bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in members(root):
            data = (root / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(data)
            info.mode = 0o755 if (root / relative).stat().st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / ARCHIVE_NAME
    archive.write_bytes(packed)
    return archive, hashlib.sha256(packed).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.worker_source", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    archive, digest = build(args.out_dir)
    print(f"{archive} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
