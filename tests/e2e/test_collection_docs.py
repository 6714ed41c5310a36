"""The collection documents itself the way Ansible users read it, with `ansible-doc`: every module's options in step
with its argument spec, its examples and return values, the filter's, and every role's inputs. DOCUMENTATION is a
literal in each module file (ansible-doc reads it without importing the module), so these tests keep it true."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import testbed_code as sources  # how the documentation site reads the collection (ansible-doc --json)
from support import BIN, PROJECT, clean_env, run
from testbed.ansible.action import module_file  # the module file as the action plugin loads it: its SPEC

MODULES = sources.module_names()
ROLES = sorted(path.name for path in (PROJECT / "roles").iterdir() if path.is_dir())
COLLECTIONS = PROJECT / ".collections"
# What an argument spec says of an option, and what it means when it says nothing.
SPEC_FIELDS = {"type": "str", "elements": None, "default": None, "choices": None, "required": False, "aliases": None}


def spec_problems(spec: Mapping[str, Mapping[str, Any]], options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What a module's documented options get wrong about its argument spec, one line each: an option on one side
    only, a field that differs (type, elements, default, choices, required, aliases; a default of another type
    counts), an option without a description."""
    problems = [f"{name}: in SPEC, not documented" for name in sorted(set(spec) - set(options))]
    problems += [f"{name}: documented, not in SPEC" for name in sorted(set(options) - set(spec))]
    for name in sorted(set(spec) & set(options)):
        for field, unsaid in SPEC_FIELDS.items():
            given, documented = spec[name].get(field, unsaid), options[name].get(field, unsaid)
            if given != documented or type(given) is not type(documented):
                problems.append(f"{name}: {field} {documented!r} documented, {given!r} in SPEC")
        if not sources_text(options[name].get("description")).strip():
            problems.append(f"{name}: no description")
    return problems


def sources_text(description: object) -> str:
    return " ".join(map(str, description)) if isinstance(description, list) else str(description or "")


def pages(text: str, kind: str) -> dict[str, str]:
    """ansible-doc's text for several plugins, by short name (its header may set the name in bold, as *name*)."""
    found = {}
    for page in text.split(f"> {kind} ")[1:]:
        match = re.match(r"\W*testbed\.pipeline\.(\w+)", page)
        assert match, page[:200]
        found[match.group(1)] = page
    return found


def ansible_doc(*args: str) -> str:
    """ansible-doc's text, as a user sees it (no colours), from this checkout's collection."""
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    result = run([str(BIN / "ansible-doc"), *args], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[WARNING]" not in result.stderr and "[ERROR]" not in result.stderr, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def documented() -> dict[str, dict[str, Any]]:
    """Every module as `ansible-doc --json` reads it (DOCUMENTATION with its fragments, EXAMPLES, RETURN)."""
    return sources.module_docs()


@pytest.mark.parametrize("module", MODULES)
def test_module_documents_its_argument_spec(module: str, documented: dict[str, dict[str, Any]]) -> None:
    found = documented[module]
    # This checkout's file, not a copy installed elsewhere.
    assert Path(found["doc"]["filename"]).resolve() == PROJECT / "plugins" / "modules" / f"{module}.py"
    spec = module_file(found["doc"]["filename"]).SPEC
    assert spec_problems(spec, found["doc"].get("options") or {}) == []


def test_spec_check_names_what_drifted() -> None:
    """The check above fails, naming the option and the field, when a module's SPEC and DOCUMENTATION part."""
    spec = {"run_id": {"type": "str", "required": True}, "timeout": {"type": "float", "default": 60.0},
            "args": {"type": "list", "elements": "str", "default": []}}
    options = {"run_id": {"type": "str", "required": True, "description": "The run."},
               "timeout": {"type": "float", "default": 60.0, "description": "Seconds."},
               "args": {"type": "list", "elements": "str", "default": [], "description": "Arguments."}}
    assert spec_problems(spec, options) == []
    drifted = {**options, "timeout": {"type": "float", "default": 60, "description": "Seconds."},
               "args": {"type": "list", "default": [], "description": " "}, "grace": {"type": "int"}}
    del drifted["run_id"]
    assert spec_problems(spec, drifted) == [
        "run_id: in SPEC, not documented",
        "grace: documented, not in SPEC",
        "args: elements None documented, 'str' in SPEC",
        "args: no description",
        "timeout: default 60 documented, 60.0 in SPEC",
    ]


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_is_complete(module: str, documented: dict[str, dict[str, Any]]) -> None:
    """What a user needs besides the options: what it does, what it needs, how it behaves, how the roles call it,
    and what it returns."""
    found = documented[module]
    doc = found["doc"]
    for key in ("short_description", "description", "version_added", "author", "requirements", "notes", "seealso"):
        assert doc.get(key), f"{module}: no {key}"
    assert any("testbed" in requirement for requirement in doc["requirements"])
    # Check mode as the module declares it to AnsibleModule (the action plugin hands check mode to the module).
    supports = "supports_check_mode=True" in Path(doc["filename"]).read_text(encoding="utf-8")
    assert doc["attributes"]["check_mode"]["support"] == ("full" if supports else "none")
    for attribute in ("check_mode", "diff_mode", "idempotent", "action", "platform"):
        assert doc["attributes"][attribute].get("support") and doc["attributes"][attribute].get("description")

    assert found["examples"] and found["return"], f"{module}: no EXAMPLES or no RETURN"
    tasks = yaml.safe_load(found["examples"])
    calls = [task for task in _tasks(tasks) if f"testbed.pipeline.{module}" in task]
    assert calls, f"{module}: no example calls it by its FQCN"
    spec = module_file(doc["filename"]).SPEC
    for task in calls:
        given = set(task[f"testbed.pipeline.{module}"])
        assert given <= set(spec), f"{module}: an example passes {given - set(spec)}"
        assert {name for name, option in spec.items() if option.get("required")} <= given

    returns = found["return"]
    assert "exit_code" in returns, f"{module}: its failure's exit code is not documented"
    for key, value in returns.items():
        assert value.get("description") and value.get("type") and value.get("returned"), f"{module}: {key}"
        assert "sample" in value or value["returned"].startswith("failure"), f"{module}: {key} has no sample"


def _tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every task of an example, those inside blocks included."""
    found = []
    for task in tasks:
        found.append(task)
        for section in ("block", "rescue", "always"):
            found += _tasks(task.get(section) or [])
    return found


def test_ansible_doc_shows_every_module() -> None:
    """`ansible-doc testbed.pipeline.MODULE` prints each option with its type and description, the examples and
    the return values."""
    text = ansible_doc(*(f"testbed.pipeline.{module}" for module in MODULES))
    shown = pages(text, "MODULE")
    assert sorted(shown) == MODULES
    for module, page in shown.items():
        spec = module_file(str(PROJECT / "plugins" / "modules" / f"{module}.py")).SPEC
        options = page.split("OPTIONS", 1)[1].split("ATTRIBUTES:", 1)[0]
        for name, option in spec.items():
            parts = options.split(f" {name}  ", 1)
            assert len(parts) == 2, f"{module}: option {name} not shown"
            entry = parts[1].split("\n- ", 1)[0].split("\n= ", 1)[0]
            assert f"type: {option.get('type', 'str')}" in entry, f"{module}: {name} without its type"
            assert len(entry.split("default:")[0].split("type:")[0].split()) >= 3, f"{module}: {name} undescribed"
        for section in ("EXAMPLES:", "RETURN VALUES:", "REQUIREMENTS:", "NOTES:", "SEE ALSO:", "AUTHOR:"):
            assert section in page, f"{module}: no {section}"
        assert f"testbed.pipeline.{module}:" in page.split("EXAMPLES:", 1)[1]
        assert "- exit_code " in page.split("RETURN VALUES:", 1)[1]


def test_ansible_doc_shows_the_filter() -> None:
    text = ansible_doc("-t", "filter", "testbed.pipeline.secrets_source")
    assert "_input" in text and "type: str" in text and "EXAMPLES:" in text and "RETURN VALUES:" in text
    found = sources.ansible_doc(["secrets_source"], "filter")["secrets_source"]
    assert found["doc"]["options"]["_input"]["type"] == "str"
    assert "testbed.pipeline.secrets_source" in found["examples"]
    assert found["return"]["_value"]["type"] == "str"


def test_ansible_doc_shows_every_roles_inputs() -> None:
    """`ansible-doc -t role testbed.pipeline.ROLE`: each input with its type and description, who wrote it and an
    example; the same inputs its meta/argument_specs.yml validates."""
    found = sources.ansible_doc(ROLES, "role")
    assert sorted(found) == ROLES
    for role, data in found.items():
        main = data["entry_points"]["main"]
        for key in ("short_description", "description", "author", "examples"):
            assert main.get(key), f"{role}: no {key}"
        assert f"testbed.pipeline.{role}" in main["examples"]
        assert set(main["options"]) == set(sources.role_specs()[role]["options"])
        for name, option in main["options"].items():
            assert option.get("type") and sources_text(option.get("description")).strip(), f"{role}: {name}"
    text = ansible_doc("-t", "role", *(f"testbed.pipeline.{role}" for role in ROLES))
    shown = pages(text, "ROLE:")
    assert sorted(shown) == ROLES
    for role, data in found.items():
        page = shown[role]
        for name, option in data["entry_points"]["main"]["options"].items():
            assert f" {name}  " in page and f"type: {option['type']}" in page, f"{role}: {name}"
        assert "EXAMPLES:" in page and "AUTHOR:" in page
