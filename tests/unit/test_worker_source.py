"""The worker image's source archive: a worker starts its agent from it alone, its digest
changes exactly when its files do, and requirements-agent.txt covers what it imports."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

from infra import worker_source

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"agent", "chalicelib", "cli"}

IMPORT_ALL = """
import importlib, pkgutil, sys
import agent, cli
names = [m.name for p in (agent, cli)
         for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
outside = sorted(n for n, m in sys.modules.items()
                 if n.split(".")[0] in ("agent", "cli", "chalicelib")
                 and not str(getattr(m, "__file__", "") or "").startswith(sys.argv[1]))
print(len(names), outside)
"""


def _unpacked(tmp_path: Path) -> Path:
    archive, _ = worker_source.build(tmp_path / "out")
    target = tmp_path / "opt-openfloat"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _without_the_project() -> dict[str, str]:
    # -S: no site-packages processing, so the project's own editable install is not seen;
    # the installed third-party packages come in through PYTHONPATH, as pip --target puts
    # them beside the code on a worker.
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": sysconfig.get_paths()["purelib"]}


def test_the_agent_and_cli_start_from_the_archive_alone(tmp_path: Path) -> None:
    target = _unpacked(tmp_path)
    env = _without_the_project()
    imported = subprocess.run([sys.executable, "-S", "-c", IMPORT_ALL, str(target)], cwd=target,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
    assert imported.returncode == 0, imported.stderr
    count, outside = imported.stdout.split(" ", 1)
    assert int(count) > 10
    assert outside.strip() == "[]"
    helped = subprocess.run([sys.executable, "-S", "-m", "agent", "--help"], cwd=target, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "--commands-queue" in helped.stdout
    for script in ("infra/worker-setup.sh", "infra/worker-check.sh", "agent/install.sh"):
        assert (target / script).read_bytes() == (ROOT / script).read_bytes()
    # podman cp copies it into each job's container as it is: it must stay executable.
    assert os.access(target / "agent/injob/usr/local/bin/float", os.X_OK)


def test_equal_files_give_an_equal_archive_and_a_change_a_new_digest(tmp_path: Path) -> None:
    _, first = worker_source.build(tmp_path / "a")
    _, again = worker_source.build(tmp_path / "b")
    assert first == again
    copy = tmp_path / "copy"
    for relative in worker_source.members(ROOT):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, copy / relative)
    _, copied = worker_source.build(tmp_path / "c", root=copy)
    assert copied == first
    with (copy / "agent" / "agent.py").open("a") as changed:
        changed.write("\n")
    _, after = worker_source.build(tmp_path / "d", root=copy)
    assert after != first


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for relative in worker_source.members(ROOT):
        if relative.suffix != ".py":
            continue
        for node in ast.walk(ast.parse((ROOT / relative).read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - PROJECT_PACKAGES


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """The distributions the requirements install, with everything they require."""
    seen: set[str] = set()
    todo = [_canonical(r) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" not in requirement:
                todo.append(_canonical(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return seen


def test_requirements_agent_installs_every_package_the_worker_imports() -> None:
    listed = [line.split("==")[0].strip() for line in
              (ROOT / "requirements-agent.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    installed = _closure(listed)
    providers = importlib.metadata.packages_distributions()
    imported = _imported_top_levels()
    assert {"boto3", "pydantic", "yaml"} <= imported
    missing = {name: providers.get(name) for name in imported
               if not {_canonical(d) for d in providers.get(name, [])} & installed}
    assert missing == {}

