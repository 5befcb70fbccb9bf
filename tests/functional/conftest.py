"""Fixtures of the functional suite beyond the shared ones."""

from pathlib import Path

import pytest

from infra.package import main as package_main
from tests.functional.workflow_helpers import flows, no_capacity  # noqa: F401 - fixtures, used by name


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output of `make package` (the SAM template and the functions' code), built once."""
    out = tmp_path_factory.mktemp("package") / "package"
    assert package_main([str(out)]) == 0, "chalice package failed"
    return out
