"""The project's own hygiene, in the test run so CI enforces it: linters, and docs kept in step with code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

# The docs' hook: what it writes and checks, these tests check.
import docs_reference as reference
import testbed_code as sources
from support import BIN, PROJECT, clean_env, run

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
    # The default ansible-doc shows is the one the role uses; one computed when the role runs is described instead.
    for name, value in defaults.items():
        if "{{" in str(value):
            assert "default" not in specs[name], f"{name}: its spec shows a default the role computes otherwise"
        elif "default" in specs[name]:
            assert specs[name]["default"] == value, f"{name}: {specs[name]['default']!r} in the spec, {value!r} used"
    assert (role / "tasks" / "main.yml").is_file()


# ------------------------------------------------------------------ the documentation site (docs/, mkdocs.yml)


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    """Every link and anchor resolves, every page is in the nav, and the reference pages agree with the code (the
    hook fails the build otherwise)."""
    result = run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                 env={**clean_env(), "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    exit_codes = (tmp_path / "site" / "reference" / "exit-codes" / "index.html").read_text()
    # The codes in the table's first column, each whole ("130 / 143" is two): "11" is not found in "110".
    listed = {int(code) for cell in re.findall(r"<tr>\s*<td>([^<]*)</td>", exit_codes)
              for code in cell.split(" / ")}
    assert set(sources.exit_codes()) - listed == set(), listed
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "--readiness-timeout" in cli and "<!-- generated" not in cli


def test_docs_reference_agrees_with_the_code() -> None:
    """Exit codes, testbed.yml's keys and the commands (hand-written tables) against ExitCode, the config schema
    and the parser; every role input a playbook sets against its role's argument_specs."""
    assert reference.problems() == []


def test_docs_checks_name_what_drifted() -> None:
    """The checks catch a table that lost a row or gained one the code does not have."""
    page = (PROJECT / "docs" / "reference" / "exit-codes.md").read_text()
    assert reference.check(page) == []
    assert reference.check(page.replace("| 15 |", "| 16 |")) == [
        "exit code 15 (DEADLINE) has no row",
        "a row for exit code 16, which testbed.core.errors.ExitCode does not have"]
    config = (PROJECT / "docs" / "reference" / "config.md").read_text()
    assert reference.check(config) == []
    drifted = config.replace("| `tests.deadline` |", "| `tests.dead_line` |")
    assert reference.check(drifted) == [
        "testbed.yml key `tests.deadline` has no row",
        "a row for `tests.dead_line`, which testbed.yml's schema (testbed.config.service) does not have"]
    cli = (PROJECT / "docs" / "reference" / "cli.md").read_text()
    lines = [line for line in cli.splitlines() if not line.startswith("| `testbed gc")]
    assert reference.check("\n".join(lines)) == ["command `testbed gc` has no row"]


def test_docs_generated_tables_cover_the_code() -> None:
    """Every flag of every command, every playbook variable, every catalogue setting and every role input is in
    the tables the hook writes."""
    cli = reference.render_cli()
    for name, (sub, _) in reference._subcommands(sources.cli_parser()).items():
        assert f"### testbed {name} " in cli
        for action in reference._options(sub):
            assert all(f"`{flag}`" in cli for flag in action.option_strings), action.option_strings
            assert reference.option_help(action), f"testbed {name} {action.dest}: no help and no fallback"
    variables = reference.render_playbook_variables()
    for name in sources.playbook_vars()[0]:
        assert f"| `{name}` |" in variables, name
    catalogue = reference.render_catalogue()
    for server, settings in sources.catalogue().items():
        for key in settings:
            assert key == "title" or f"| `{server}` | `{key}` |" in catalogue, f"settings.{server}.{key}"
    roles = reference.render_roles()
    for option in reference.role_options():
        assert f"| `{option}` |" in roles, option
    modules = reference.render_modules()
    sections = {part.split(" ", 1)[0]: part for part in modules.split("### testbed.pipeline.")[1:]}
    for module, found in sources.module_docs().items():
        for name in [*found["doc"]["options"], *found["return"]]:
            assert f"| `{name}` |" in sections[module], f"{module}: {name}"
        assert f"testbed.pipeline.{module}:" in sections[module], f"{module}: no example"
    assert reference.MARKUP.search(modules) is None, "Ansible markup left as it is"


def test_readme_is_short_and_shows_the_example_as_it_is() -> None:
    """README: at most 150 lines, the two set-up commands CI relies on, and the example's testbed.yml and CI job as
    examples/minimal has them."""
    readme = (PROJECT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "./bootstrap run " in readme and "./bootstrap test " in readme
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
    example = PROJECT / "examples" / "minimal"
    assert yaml.safe_load(blocks[0]) == yaml.safe_load((example / "testbed.yml").read_text())
    job = yaml.safe_load((example / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    assert yaml.safe_load(blocks[1]) == {"jobs": job}
    assert len(blocks[1].splitlines()) <= 15


def test_docs_check_the_role_inputs_playbooks_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A playbook that gives a role an input its argument_specs lack (a misspelt one) is named."""
    texts = sources.playbook_texts()
    extra = ("- hosts: all\n  tasks:\n    - ansible.builtin.import_role: {name: testbed.pipeline.tests}\n"
             "      vars: {tests_worker: '{{ testbed_workers }}'}\n")
    monkeypatch.setattr(sources, "playbook_texts", lambda: {**texts, "extra.yml": extra})
    assert reference.check_playbook_inputs() == [
        "playbooks/extra.yml sets tests_worker, which roles/tests/meta/argument_specs.yml lacks"]
