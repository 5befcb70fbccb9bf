"""The Step Functions workflows: their ASL files in statemachines/ (the only definition), the
task functions they call, and the substitution of deployment-specific names into them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

STATEMACHINES = Path(__file__).resolve().parent.parent / "statemachines"
# The workflows the control plane starts (executions.start). Each ends with its verdict for
# the job at `$.end`, or without one when there is nothing to settle; each runs inside an
# execution of SETTLE of the same name, which settles the job with that verdict.
STARTED = ("launch", "migrate", "suspend", "resume", "finish", "cancel")
SETTLE = "settle"
# Children first: the workflows after them run them as nested executions, so they must exist
# (and their ARNs be known) before those are created.
WORKFLOWS = ("place", "restore", *STARTED, SETTLE)
# Placeholder in the ASL → name of the Chalice task function (app.py) it stands for.
TASK_FUNCTIONS: dict[str, str] = {
    "SetStatusFunction": "task-set-status",
    "JobInstanceFunction": "task-job-instance",
    "ReleaseInstanceFunction": "task-release-instance",
    "PlanLaunchFunction": "task-plan-launch",
    "LaunchInstanceFunction": "task-launch-instance",
    "SettleJobFunction": "task-settle-job",
    "AttachVolumesFunction": "task-attach-volumes",
}
# Placeholder in the ASL → the workflow a nested execution runs.
CHILD_WORKFLOWS: dict[str, str] = {
    "PlaceWorkflow": "place",
    "RestoreWorkflow": "restore",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def path_of(workflow: str) -> Path:
    return STATEMACHINES / f"{workflow}.asl.json"


def placeholders(workflow: str) -> set[str]:
    return set(_PLACEHOLDER.findall(path_of(workflow).read_text()))


def definition(workflow: str, substitutions: dict[str, str]) -> str:
    """The workflow's ASL with every `${Name}` replaced; a name left unreplaced is an error."""
    text = path_of(workflow).read_text()
    missing = set(_PLACEHOLDER.findall(text)) - set(substitutions)
    if missing:
        raise KeyError(f"{workflow}.asl.json needs values for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)


def walk_states(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every state of a definition, nested ones (Parallel branches, Map iterators) included."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, state in document.get("States", {}).items():
        found.append((name, state))
        for branch in state.get("Branches", []):
            found += walk_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found += walk_states(state[key])
    return found


def error_names(workflow: str) -> set[str]:
    """Every name in the workflow's Retry and Catch `ErrorEquals` lists."""
    document = json.loads(path_of(workflow).read_text())
    names: set[str] = set()
    for _, state in walk_states(document):
        for rule in state.get("Retry", []) + state.get("Catch", []):
            names.update(rule["ErrorEquals"])
    return names
