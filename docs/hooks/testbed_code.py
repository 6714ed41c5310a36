"""What the documentation reads from testbed's code and files, in one place: when a module moves, repoint it here.

The hook (docs_reference.py) writes the reference tables from these at build time and checks the hand-written ones
against them; tests/e2e/test_lint.py runs the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
PLAYBOOKS = ROOT / "playbooks"
PLAYBOOK_VARS = PLAYBOOKS / "vars" / "testbed.yml"
MODULES = ROOT / "plugins" / "modules"
ACTION = ROOT / "action.yml"
REUSABLE_WORKFLOW = ROOT / ".github" / "workflows" / "testbed.yml"

Schema = dict[str, type | tuple[type, ...] | None]


def exit_codes() -> dict[int, str]:
    """Every exit code testbed's commands use, with its name in the code."""
    from testbed.core.errors import ExitCode  # noqa: PLC0415

    return {int(code): code.name for code in ExitCode}


def cli_parser() -> argparse.ArgumentParser:
    """The `testbed` command line, as the command itself builds it."""
    from testbed.cli.arguments import parser  # noqa: PLC0415

    return parser()


def config_schema() -> dict[str, Schema]:
    """testbed.yml's keys by where they sit: '' the top level, then each nested mapping's prefix. A declared
    server's keys have no types in a table of their own (servers/declared.py checks each by hand): None."""
    from testbed.config import service as config  # noqa: PLC0415
    from testbed.servers import declared  # noqa: PLC0415

    return {
        "": dict(config._TOP_LEVEL),
        "tests.": dict(config._TESTS),
        "migrations.": dict(config._MIGRATIONS),
        "secrets.<VARIABLE>.": dict(config._SECRET),
        "servers.<name>.": dict.fromkeys(declared._KEYS),
    }


def type_name(expected: type | tuple[type, ...]) -> str:
    """A schema type as testbed's own error messages word it ("a string or a mapping")."""
    from testbed.config.servers import type_name as name  # noqa: PLC0415

    return name(expected)


def catalogue() -> dict[str, dict[str, Any]]:
    """The one service catalogue (roles/servers/defaults/main.yml) of this checkout."""
    from testbed.config.catalogue import load_catalogue  # noqa: PLC0415

    return load_catalogue(ROOT)


def role_specs() -> dict[str, dict[str, Any]]:
    """Each role's `main` argument spec (roles/*/meta/argument_specs.yml), by role name."""
    return {
        path.parents[1].name: yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]["main"]
        for path in sorted(ROLES.glob("*/meta/argument_specs.yml"))
    }


def playbook_vars() -> tuple[dict[str, Any], str]:
    """The playbooks' inputs (playbooks/vars/testbed.yml): their values, and the file's text for its comments."""
    text = PLAYBOOK_VARS.read_text(encoding="utf-8")
    return yaml.safe_load(text), text


def playbook_texts() -> dict[str, str]:
    """Every playbook and task file, by its path under playbooks/ (where the inputs are passed to roles)."""
    return {
        str(path.relative_to(PLAYBOOKS)): path.read_text(encoding="utf-8")
        for path in sorted(PLAYBOOKS.rglob("*.yml"))
        if path != PLAYBOOK_VARS
    }


def ansible_doc(names: list[str], plugin_type: str = "module") -> dict[str, Any]:
    """What `ansible-doc --json` says of these plugins of this checkout's collection (by short name): documentation
    fragments merged, as Ansible itself reads it (the modules' DOCUMENTATION is never imported)."""
    argv = [str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", plugin_type]
    argv += [f"testbed.pipeline.{name}" for name in names]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    return {name.removeprefix("testbed.pipeline."): data for name, data in found.items()}


def module_names() -> list[str]:
    """The collection's modules, by short name."""
    return sorted(path.stem for path in MODULES.glob("testbed_*.py"))


def module_docs() -> dict[str, dict[str, Any]]:
    """Each module of the collection as ansible-doc reads it: `doc` (DOCUMENTATION with its fragments), `examples`
    (text) and `return` (RETURN)."""
    return ansible_doc(module_names())


def action() -> dict[str, Any]:
    """The composite action's metadata (action.yml)."""
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return data


def workflow_call() -> dict[str, Any]:
    """The reusable workflow's `on: workflow_call` (.github/workflows/testbed.yml): its inputs and secrets."""
    data = yaml.safe_load(REUSABLE_WORKFLOW.read_text(encoding="utf-8"))
    call: dict[str, Any] = data[True]["workflow_call"]  # YAML 1.1 reads the key `on` as true
    return call
