"""The project's own hygiene, in the test run so CI enforces it: linters, and docs kept in step with code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import BIN, PROJECT, run
from testbed.config.catalogue import load_catalogue

ROLES = sorted(p for p in (PROJECT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("argv", [
    (str(BIN / "ruff"), "check", "."),
    (str(BIN / "ruff"), "format", "--check", "src"),
    (sys.executable, "-m", "mypy"),
    (str(BIN / "yamllint"), "--strict", "."),
    (str(BIN / "ansible-lint"), "--offline", "--profile", "production"),
], ids=["ruff", "ruff-format", "mypy", "yamllint", "ansible-lint"])
def test_linter_is_clean(argv: tuple[str, ...]) -> None:
    result = run(list(argv))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_argument_specs_in_step_with_its_defaults(role: Path) -> None:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) or {} if defaults_file.is_file() else {}
    assert set(defaults) <= set(specs), f"defaults without a spec: {set(defaults) - set(specs)}"
    undocumented = {k for k, v in specs.items() if k not in defaults and not v.get("required")}
    assert not undocumented, f"optional inputs without a default: {undocumented}"
    for name, spec in specs.items():
        assert name.startswith(f"{role.name}_"), f"{name} is not prefixed with the role's name"
        assert spec.get("description"), f"{name} has no description"
        assert "type" in spec, f"{name} has no type"
    assert (role / "tasks" / "main.yml").is_file()


def test_readme_documents_every_config_key_and_catalogue_setting() -> None:
    readme = (PROJECT / "README.md").read_text()
    for key in ("name", "servers", "settings", "migrations", "tests.paths", "tests.pytest_args", "tests.coverage",
                "tests.timeout", "install", "secrets", "env"):
        assert f"`{key}`" in readme, key
    for server, settings in load_catalogue(PROJECT).items():
        for key in settings:
            if key != "title":
                assert f"`{key}`" in readme, f"settings.{server}.{key} is not in README"


def test_readme_documents_every_playbook_variable_and_exit_code() -> None:
    readme = (PROJECT / "README.md").read_text()
    for name in yaml.safe_load((PROJECT / "playbooks" / "vars" / "testbed.yml").read_text()):
        assert f"`{name}`" in readme, name
    from testbed.core.errors import ExitCode  # noqa: PLC0415

    for code in ExitCode:
        assert f"| {int(code)} |" in readme or f"{int(code)} /" in readme or f"/ {int(code)}" in readme, code
