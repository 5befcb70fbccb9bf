"""The release the CLI and the OpCenter report is the one the package is built as."""

import tomllib
from pathlib import Path

from chalicelib.wire.api import RELEASE

ROOT = Path(__file__).resolve().parents[2]


def test_the_reported_release_is_the_packages_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert project["version"] == RELEASE
