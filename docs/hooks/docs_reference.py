"""mkdocs hook: the reference pages' tables, written from testbed's code at build time or checked against it.

A page asks for a table (or a phrase) with `<!-- generated: NAME -->`, replaced by it, or marks a hand-written table
with `<!-- checked: NAME -->` on the line before it (the build fails, naming what is missing or extra, when it
disagrees with the code). tests/e2e/test_lint.py runs the same checks on every page. Everything read from testbed
comes through testbed_code.py.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

import testbed_code as sources

DOCS = Path(__file__).resolve().parents[1]
GENERATED = re.compile(r"<!-- generated: ([a-z-]+) -->")
CHECKED = re.compile(r"^<!-- checked: ([a-z-]+) -->\n((?:\|.*\n?)+)", re.MULTILINE)
BACKTICKED = re.compile(r"`([^`]+)`")
PLAYBOOK_VAR = re.compile(r"\btestbed_[a-z0-9_]+\b")

# Help for the few options whose argparse definition has none (src/testbed/cli_arguments.py), by `dest`; an
# option's own help, once it has one, wins.
class ReferenceError(Exception):
    """A reference page that cannot be written, or that disagrees with the code."""


def cell(text: object) -> str:
    """One table cell: a single line; outside code spans, pipes escaped and `<service>` kept from reading as an
    HTML tag (inside a code span, an escape would show)."""
    parts = " ".join(str(text).split()).split("`")
    return "`".join(
        part if inside % 2 else part.replace("|", "\\|").replace("<", "&lt;") for inside, part in enumerate(parts)
    )


def code(value: object) -> str:
    """A value as inline code, YAML-spelt (`""`, `[]`, `false`), backticks inside doubled out."""
    text = value if isinstance(value, str) and value else yaml.safe_dump(value, default_flow_style=True).strip()
    text = text.removesuffix("\n...").strip()
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    # Inside a code span a pipe needs no escape (Python-Markdown's tables respect code spans) and would show one.
    return f"{fence}{pad}{' '.join(text.split())}{pad}{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_of(description: object) -> str:
    """An Ansible description: a string or a list of paragraphs."""
    if isinstance(description, list):
        return " ".join(str(part) for part in description)
    return str(description or "")


# ---------------------------------------------------------------------------------------------- the command line


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    raise ReferenceError("the testbed parser has no subcommands")


def _options(sub: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in sub._actions:
        if not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield action


def option_help(action: argparse.Action) -> str:
    return action.help or ""


def _option_row(action: argparse.Action) -> list[str]:
    if action.option_strings:
        name = ", ".join(f"`{flag}`" for flag in action.option_strings)
    else:
        name = f"`{action.metavar or action.dest}`" + (" …" if action.nargs in ("+", "*") else "")
        if action.nargs == argparse.REMAINDER:
            name = "`-- PYTEST_ARGS…`"
    if action.choices:
        value = "\\|".join(f"`{choice}`" for choice in action.choices)
    elif action.nargs == 0:
        value = "—"
    else:
        value = code(action.metavar or action.dest.upper()) if action.option_strings else "—"
    default = action.default
    shown = "—" if default in (None, False, "", [], 0) or default == argparse.SUPPRESS else code(default)
    if action.required and action.nargs != argparse.REMAINDER:
        shown = "required"
    return [name, value, shown, cell(option_help(action))]


def render_cli() -> str:
    parser = sources.cli_parser()
    parts = []
    for name, (sub, summary) in _subcommands(parser).items():
        usage = " ".join(sub.format_usage().split()).removeprefix("usage: ")
        parts.append(f"### testbed {name} {{#{name}}}\n\n{summary[:1].upper()}{summary[1:]}.\n\n```\n{usage}\n```\n")
        rows = [_option_row(action) for action in _options(sub)]
        if rows:
            parts.append(table(["option", "value", "default", "what it does"], rows))
    return "\n".join(parts)


def check_commands(rows: list[list[str]]) -> list[str]:
    """A table whose first column starts `testbed COMMAND`: one row (at least) per command, no other command."""
    known = set(_subcommands(sources.cli_parser()))
    named = set()
    for row in rows:
        match = re.match(r"`testbed ([a-z]+)", row[0])
        if match:
            named.add(match.group(1))
    return [f"command `testbed {c}` has no row" for c in sorted(known - named)] + [
        f"row for `testbed {c}`, which the parser does not have" for c in sorted(named - known)
    ]


# ---------------------------------------------------------------------------------------------- exit codes


def check_exit_codes(rows: list[list[str]]) -> list[str]:
    """Every ExitCode has a row (`130 / 143` counts for both), and every row is an ExitCode."""
    codes = sources.exit_codes()
    listed: set[int] = set()
    for row in rows:
        listed |= {int(number) for number in re.findall(r"\d+", row[0])}
    return [f"exit code {c} ({codes[c]}) has no row" for c in sorted(set(codes) - listed)] + [
        f"a row for exit code {c}, which testbed.core.errors.ExitCode does not have"
        for c in sorted(listed - set(codes))
    ]


# ---------------------------------------------------------------------------------------------- testbed.yml


def config_keys() -> dict[str, str]:
    """Every key of testbed.yml, dotted (`tests.paths`, `servers.<name>.port`), with its type where the schema
    has one."""
    keys: dict[str, str] = {}
    for prefix, schema in sources.config_schema().items():
        for key, expected in schema.items():
            keys[prefix + key] = sources.type_name(expected) if expected is not None else ""
    return keys


def check_config_keys(rows: list[list[str]]) -> list[str]:
    """The tables marked `config-keys` name every key of the schema (first column, in backticks) and no other;
    the catalogue's servers and the top-level sections a nested key implies need no row of their own."""
    known = config_keys()
    listed = {match for row in rows for match in BACKTICKED.findall(row[0])}
    return [f"testbed.yml key `{k}` has no row" for k in sorted(set(known) - listed)] + [
        f"a row for `{k}`, which testbed.yml's schema (testbed.config.service) does not have"
        for k in sorted(listed - set(known))
    ]


def render_catalogue() -> str:
    rows = []
    for server, settings in sources.catalogue().items():
        for key, value in settings.items():
            if key != "title":
                rows.append([f"`{server}`", f"`{key}`", code(value)])
    return table(["server", "`settings.<server>.` key", "default"], rows)


def catalogue_titles() -> str:
    return ", ".join(f"`{name}` ({settings.get('title', name)})" for name, settings in sources.catalogue().items())


# ---------------------------------------------------------------------------------------------- playbooks, roles


def role_options() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every role input, by name: its role and its spec."""
    return {
        option: (role, spec)
        for role, main in sources.role_specs().items()
        for option, spec in (main.get("options") or {}).items()
    }


def _walk(node: object) -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def passed_to() -> dict[str, set[str]]:
    """Which role inputs each playbook variable is given to, from the playbooks' own `vars:` (a key that is a
    role's input, whose value templates the variable)."""
    options = role_options()
    roles = {role for role, _ in options.values()}
    found: dict[str, set[str]] = {}
    for text in sources.playbook_texts().values():
        for key, value in _walk(yaml.safe_load(text)):
            if not isinstance(value, str) or not any(key.startswith(f"{role}_") for role in roles):
                continue
            for variable in PLAYBOOK_VAR.findall(value):
                found.setdefault(variable, set()).add(key)
    return found


def check_playbook_inputs() -> list[str]:
    """Every role input a playbook sets exists in that role's argument_specs."""
    options = role_options()
    roles = {role for role, _ in options.values()}
    problems = []
    for name, text in sources.playbook_texts().items():
        for key, _ in _walk(yaml.safe_load(text)):
            role = next((r for r in roles if key.startswith(f"{r}_")), None)
            if role and key not in options and not key.endswith("_catalogue"):
                problems.append(f"playbooks/{name} sets {key}, which roles/{role}/meta/argument_specs.yml lacks")
    return sorted(set(problems))


def _comments(text: str) -> dict[str, str]:
    """Each variable's comment in the vars file: the one on its line, else the block just above it (the file's
    first comment line is about the file, not the variable below it)."""
    seen_first, block, comments = False, [], {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if seen_first:
                block.append(stripped.lstrip("# "))
            seen_first = True
            continue
        match = re.match(r"^(testbed_\w+):.*?(?:\s#\s*(.*))?$", line)
        if match:
            comments[match.group(1)] = match.group(2) or " ".join(block)
        block = []
    return comments


def render_playbook_variables() -> str:
    values, text = sources.playbook_vars()
    comments = _comments(text)
    options = role_options()
    feeds = passed_to()
    rows = []
    for name, value in values.items():
        what = [comments.get(name, "")]
        for option in sorted(feeds.get(name, ())):
            role, spec = options[option]
            what.append(f"[`{option}`](collection.md#role-{role}): {text_of(spec.get('description'))}")
        rows.append([f"`{name}`", code(value), cell(" — ".join(part for part in what if part))])
    return table(["variable", "default", "what it is (and the role inputs it is given to)"], rows)


def _spec_rows(options: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, spec in options.items():
        kind = spec.get("type", "")
        if spec.get("elements"):
            kind = f"{kind} of {spec['elements']}"
        if spec.get("choices"):
            kind += " (" + ", ".join(f"`{choice}`" for choice in spec["choices"]) + ")"
        default = "required" if spec.get("required") else code(spec["default"]) if "default" in spec else "—"
        rows.append([f"`{name}`", cell(kind), default, cell(text_of(spec.get("description")))])
    return rows


def render_roles() -> str:
    parts = []
    for role, main in sources.role_specs().items():
        parts.append(f"### testbed.pipeline.{role} {{#role-{role}}}\n")
        parts.append(cell(main.get("short_description", "")) + "\n")
        if main.get("description"):
            parts.append(cell(text_of(main["description"])) + "\n")
        if main.get("options"):
            parts.append(table(["input", "type", "default", "what it is"], _spec_rows(main["options"])))
    return "\n".join(parts)


# Ansible's documentation markup (C(code), O(option=value), M(module), P(name#type), RV(key), ...) as Markdown.
MARKUP = re.compile(r"\b(C|O|V|RV|E|M|P|I|B|U)\(([^()]*)\)|\bL\(([^(),]*),\s*([^()]*)\)")
OWN_MODULE = "testbed.pipeline."


def markdown_of(text: str) -> str:
    """Ansible markup in a documentation string, as the site shows it: code spans, module links, emphasis."""

    def one(match: re.Match[str]) -> str:
        kind, inner = match.group(1), match.group(2)
        if kind is None:
            return f"[{match.group(3)}]({match.group(4)})"
        if kind == "M":
            return (
                f"[`{inner}`](#module-{inner.removeprefix(OWN_MODULE)})"
                if inner.startswith(OWN_MODULE)
                else f"`{inner}`"
            )
        if kind == "P":
            return f"`{inner.partition('#')[0]}`"
        if kind == "RV":
            return f"`{inner.rpartition(':')[2] if '#' in inner else inner}`"
        if kind in ("I", "B"):
            mark = "*" if kind == "I" else "**"
            return f"{mark}{inner}{mark}"
        if kind == "U":
            return f"<{inner}>"
        return f"`{inner}`"

    return MARKUP.sub(one, text)


def _return_rows(returns: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, spec in returns.items():
        kind = spec.get("type", "")
        if spec.get("elements"):
            kind = f"{kind} of {spec['elements']}"
        described = markdown_of(text_of(spec.get("description")))
        rows.append([f"`{name}`", cell(kind), cell(spec.get("returned", "")), cell(described)])
    return rows


def render_modules() -> str:
    """Each module as ansible-doc reads it (documentation fragments merged): what it does, its options, what it
    returns and its examples."""
    parts = []
    for module, found in sources.module_docs().items():
        documentation = found["doc"]
        parts.append(f"### testbed.pipeline.{module} {{#module-{module}}}\n")
        parts.append(cell(markdown_of(documentation.get("short_description", ""))) + "\n")
        parts += [cell(markdown_of(paragraph)) + "\n" for paragraph in _paragraphs(documentation.get("description"))]
        options = {
            name: {**spec, "description": markdown_of(text_of(spec.get("description")))}
            for name, spec in (documentation.get("options") or {}).items()
        }
        if options:
            parts.append(table(["argument", "type", "default", "what it is"], _spec_rows(options)))
        if found.get("return"):
            parts.append(table(["returns", "type", "when", "what it is"], _return_rows(found["return"])))
        if found.get("examples"):
            parts.append(f"```yaml\n{found['examples'].strip()}\n```\n")
        parts.append(f"`ansible-doc testbed.pipeline.{module}` prints all Ansible knows of it.\n")
    return "\n".join(parts)


def _paragraphs(description: object) -> list[str]:
    if isinstance(description, list):
        return [str(part) for part in description]
    return [str(description)] if description else []


# ---------------------------------------------------------------------------------------------- GitHub Actions


def _inputs(inputs: dict[str, Any], typed: bool) -> str:
    rows = []
    for name, given in inputs.items():
        spec = given or {}
        default = "required" if spec.get("required") else code(spec["default"]) if "default" in spec else "—"
        row = [f"`{name}`", default, cell(spec.get("description", ""))]
        if typed:
            row.insert(1, cell(spec.get("type", "secret")))
        rows.append(row)
    header = ["input", "type", "default", "what it is"] if typed else ["input", "default", "what it is"]
    return table(header, rows)


def render_action_inputs() -> str:
    return _inputs(sources.action()["inputs"], typed=False)


def render_action_outputs() -> str:
    outputs = sources.action()["outputs"]
    return table(["output", "what it is"], [[f"`{name}`", cell(spec["description"])] for name, spec in outputs.items()])


def render_workflow_inputs() -> str:
    call = sources.workflow_call()
    secrets = {name: {**(spec or {}), "type": "secret"} for name, spec in (call.get("secrets") or {}).items()}
    return _inputs({**call["inputs"], **secrets}, typed=True)


# ---------------------------------------------------------------------------------------------- the hook

GENERATORS: dict[str, Callable[[], str]] = {
    "cli": render_cli,
    "catalogue": render_catalogue,
    "catalogue-titles": catalogue_titles,
    "playbook-variables": render_playbook_variables,
    "roles": render_roles,
    "modules": render_modules,
    "action-inputs": render_action_inputs,
    "action-outputs": render_action_outputs,
    "workflow-inputs": render_workflow_inputs,
}
CHECKS: dict[str, Callable[[list[list[str]]], list[str]]] = {
    "exit-codes": check_exit_codes,
    "config-keys": check_config_keys,
    "commands": check_commands,
}


def _rows(block: str) -> list[list[str]]:
    rows = []
    for line in block.strip().splitlines()[2:]:  # past the header and its rule
        rows.append([part.strip() for part in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
    return rows


def check(markdown: str) -> list[str]:
    """What a page's checked tables get wrong."""
    tables: dict[str, list[list[str]]] = {}
    for match in CHECKED.finditer(markdown):
        if match.group(1) not in CHECKS:
            raise ReferenceError(f"unknown check '{match.group(1)}' (known: {', '.join(CHECKS)})")
        tables.setdefault(match.group(1), []).extend(_rows(match.group(2)))
    return [problem for name, rows in tables.items() for problem in CHECKS[name](rows)]


def render(markdown: str) -> str:
    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ReferenceError(f"unknown generated table '{name}' (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]().rstrip("\n")

    return GENERATED.sub(generate, markdown)


def problems() -> list[str]:
    """Every disagreement between the docs and the code, over all pages (what tests/e2e/test_lint.py asserts)."""
    found = [f"{path.relative_to(DOCS)}: {problem}" for path in sorted(DOCS.rglob("*.md"))
             for problem in check(path.read_text(encoding="utf-8"))]  # fmt: skip
    return found + check_playbook_inputs()


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:  # noqa: ANN401 - mkdocs' Page
    from mkdocs.exceptions import PluginError  # noqa: PLC0415

    try:
        wrong = check(markdown)
        rendered = render(markdown)
    except ReferenceError as exc:
        raise PluginError(f"{page.file.src_uri}: {exc}") from exc
    if wrong:
        raise PluginError(f"{page.file.src_uri}: " + "; ".join(wrong))
    return rendered


def on_pre_build(**_: Any) -> None:  # noqa: ANN401 - mkdocs' config
    from mkdocs.exceptions import PluginError  # noqa: PLC0415

    wrong = check_playbook_inputs()
    if wrong:
        raise PluginError("; ".join(wrong))
