"""A composite action's steps run on this machine in order, as GitHub's runner runs them (tests/e2e/test_action.py).

What the runner does and this does too: each `run:` step is a script file run by `bash --noprofile --norc -eo
pipefail` in GITHUB_WORKSPACE, with its `env:` evaluated (`${{ }}` over inputs, github, runner, steps, env);
fresh GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files per step, read back after it (outputs
to `steps.<id>.outputs`, env and path for the later steps, the summary appended to the job's); GITHUB_ACTION_PATH,
GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_ACTIONS=true and the run's ids set; `if:` evaluated with an implicit
`success()` unless it calls a status function; a failed step fails the job and only `always()` steps still run;
the action's `outputs:` evaluated at the end. `uses:` steps must be pinned to a commit, and are replaced by
stand-ins (`StandIn`) that do here what the action does on a runner, each saying how.

Not emulated: the runner's masking of `::add-mask::` values, post steps (actions/cache's save), node actions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PINNED = re.compile(r"^([\w.-]+/[\w./-]+)@([0-9a-f]{40})$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
STATUS_FUNCTIONS = re.compile(r"\b(always|success|failure|cancelled)\s*\(")


# ------------------------------------------------------------------ expressions


class ExpressionError(Exception):
    pass


_TOKEN = re.compile(r"""\s*(?:
    (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.*])
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"cannot read {text[position:]!r} in {text!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def _compare(op: str, left: Any, right: Any) -> bool:
    """GitHub's loose comparison: strings case-insensitively, mixed types as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    else:
        a, b = _number(left), _number(right)
        if math.isnan(a) or math.isnan(b):
            return op == "!="
    return {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


class _Parser:
    def __init__(self, text: str, contexts: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]):
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.contexts = contexts
        self.functions = functions

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.text!r}")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, got {token[1]!r} in {self.text!r}")
        self.at += 1
        return token

    def parse(self) -> Any:
        value = self.either()
        if self.at != len(self.tokens):
            raise ExpressionError(f"unexpected {self.peek()!r} in {self.text!r}")
        return value

    def either(self) -> Any:
        value = self.both()
        while self.peek() == "||":
            self.take()
            right = self.both()
            value = value if truthy(value) else right
        return value

    def both(self) -> Any:
        value = self.comparison()
        while self.peek() == "&&":
            self.take()
            right = self.comparison()
            value = right if truthy(value) else value
        return value

    def comparison(self) -> Any:
        value = self.unary()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            value = _compare(op, value, self.unary())
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.either()
            self.take(")")
            return value
        if kind == "number":
            return float(text)
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek() == "(":
            self.take()
            args = []
            while self.peek() != ")":
                args.append(self.either())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            if text not in self.functions:
                raise ExpressionError(f"function {text}() is not emulated (in {self.text!r})")
            return self.functions[text](*args)
        if text not in self.contexts:
            raise ExpressionError(f"context {text!r} is not emulated (in {self.text!r})")
        value = self.contexts[text]
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                key: Any = self.take()[1]
            else:
                key = to_string(self.either())
                self.take("]")
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


def evaluate(expression: str, contexts: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] | None = None
             ) -> Any:
    """One expression (without its ${{ }}) in the given contexts."""
    return _Parser(expression, contexts, functions or {}).parse()


# ------------------------------------------------------------------ the runner's files


def read_file_commands(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT or GITHUB_ENV file, as the runner reads it (name=value and name<<DELIMITER forms)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def hash_files(root: Path, *patterns: str) -> str:
    """hashFiles(): the SHA-256 of the matched files' SHA-256s, in path order; '' when none match."""
    files = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    if not files:
        return ""
    outer = hashlib.sha256()
    for path in files:
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


# ------------------------------------------------------------------ a job running one composite action


class StepFailed(Exception):
    """A stand-in's way to fail its step, as the action would."""


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure or skipped
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""


StandIn = Callable[[dict[str, str], "Job"], dict[str, str]]


@dataclass
class Job:
    """One job that checks a service out (the workspace) and runs the action; `run()` plays the action's steps."""

    action_dir: Path
    workspace: Path
    root: Path  # the runner's own folders: temp, tool cache, artifacts the stand-ins keep
    inputs: dict[str, str]
    stand_ins: Mapping[str, StandIn]
    environment: str = "github-hosted"
    env: dict[str, str] = field(default_factory=dict)  # the job's env (and what steps add through GITHUB_ENV)
    base_env: dict[str, str] = field(default_factory=dict)  # the runner process's own environment
    timeout: float = 900

    def __post_init__(self) -> None:
        self.temp = self.root / "_temp"
        self.temp.mkdir(parents=True, exist_ok=True)
        self.artifacts = self.root / "artifacts"
        self.path_additions: list[str] = []
        self.steps: dict[str, dict[str, Any]] = {}
        self.results: list[StepResult] = []
        self.summary = ""
        self.log = ""
        self.failed = False
        self.outputs: dict[str, str] = {}
        self.action = yaml.safe_load((self.action_dir / "action.yml").read_text())
        self.github = {
            "action_path": str(self.action_dir),
            "workspace": str(self.workspace),
            "job": "integration",
            "run_id": "4242",
            "run_attempt": "1",
            "repository": "octo/service",
            "ref_name": "main",
            "sha": "0" * 40,
            "event_name": "push",
        }
        self.runner = {"temp": str(self.temp), "os": "Linux", "arch": "X64", "environment": self.environment,
                       "tool_cache": str(self.root / "tool-cache")}

    # -------------------------------------------------------------- expressions in this job's contexts

    def _inputs(self) -> dict[str, str]:
        declared = self.action.get("inputs") or {}
        unknown = set(self.inputs) - set(declared)
        if unknown:
            raise ExpressionError(f"inputs the action does not declare: {sorted(unknown)}")
        return {name: self.inputs.get(name, to_string(spec.get("default", ""))) for name, spec in declared.items()}

    def evaluate(self, expression: str) -> Any:
        contexts = {"inputs": self._inputs(), "github": self.github, "runner": self.runner, "steps": self.steps,
                    "env": {**self.env}}
        functions: dict[str, Callable[..., Any]] = {
            "always": lambda: True,
            "success": lambda: not self.failed,
            "failure": lambda: self.failed,
            "cancelled": lambda: False,
            "format": lambda template, *args: re.sub(
                r"\{(\d+)\}", lambda m: to_string(args[int(m.group(1))]), to_string(template)),
            "hashFiles": lambda *patterns: hash_files(self.workspace, *map(to_string, patterns)),
            "contains": lambda haystack, needle: to_string(needle).casefold() in to_string(haystack).casefold(),
        }
        return _Parser(expression, contexts, functions).parse()

    def render(self, value: Any) -> str:
        """A `with:`/`env:` value: its ${{ }} parts evaluated into the string."""
        text = to_string(value)
        return EXPRESSION.sub(lambda m: to_string(self.evaluate(m.group(1))), text)

    def condition(self, step: Mapping[str, Any]) -> bool:
        text = to_string(step.get("if", "")).strip()
        if not text:
            return not self.failed
        match = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.DOTALL)
        text = match.group(1) if match else text
        if not STATUS_FUNCTIONS.search(text):
            text = f"success() && ({text})"
        return truthy(self.evaluate(text))

    # -------------------------------------------------------------- the steps

    def run(self) -> Job:
        for index, step in enumerate(self.action["runs"]["steps"]):
            name = step.get("name") or step.get("uses") or f"step {index + 1}"
            step_id = step.get("id", f"__{index}")
            if not self.condition(step):
                self.results.append(StepResult(name, "skipped"))
                self.steps[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            result = self._uses(name, step) if "uses" in step else self._run(name, step)
            self.results.append(result)
            self.steps[step_id] = {"outputs": result.outputs, "outcome": result.outcome,
                                   "conclusion": result.outcome}
            if result.outcome == "failure":
                self.failed = True
        self.outputs = {name: self.render(spec.get("value", ""))
                        for name, spec in (self.action.get("outputs") or {}).items()}
        return self

    def _step_env(self, files: Mapping[str, Path]) -> dict[str, str]:
        env = {**self.base_env, **self.env}
        env.update({
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(self.action_dir),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_JOB": self.github["job"],
            "GITHUB_RUN_ID": self.github["run_id"],
            "GITHUB_RUN_ATTEMPT": self.github["run_attempt"],
            "GITHUB_REPOSITORY": self.github["repository"],
            "GITHUB_REF_NAME": self.github["ref_name"],
            "GITHUB_SHA": self.github["sha"],
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": self.runner["os"],
            "RUNNER_ARCH": self.runner["arch"],
            "RUNNER_ENVIRONMENT": self.environment,
            "RUNNER_TOOL_CACHE": self.runner["tool_cache"],
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_PATH": str(files["path"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
        })
        if self.path_additions:
            env["PATH"] = os.pathsep.join([*reversed(self.path_additions), env.get("PATH", "")])
        return env

    def prepare(self, step: Mapping[str, Any]) -> tuple[list[str], dict[str, str], Path, dict[str, Path]]:
        """A `run:` step's command, environment, folder and file-command files, as the runner sets them up."""
        if step.get("shell") != "bash":
            raise ExpressionError(f"only shell: bash is emulated, not {step.get('shell')!r}")
        commands = self.temp / "_runner_file_commands"
        commands.mkdir(exist_ok=True)
        key = uuid.uuid4().hex
        files = {kind: commands / f"{kind}_{key}" for kind in ("output", "env", "path", "summary")}
        for path in files.values():
            path.touch()
        env = self._step_env(files)
        env.update({k: self.render(v) for k, v in (step.get("env") or {}).items()})
        script = self.temp / f"{key}.sh"
        script.write_text(step["run"])
        cwd = self.workspace / self.render(step["working-directory"]) if "working-directory" in step else self.workspace
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env, cwd, files

    def finish(self, name: str, returncode: int, log: str, files: Mapping[str, Path]) -> StepResult:
        """After a `run:` step: its outputs, env, path and summary read back as the runner reads them."""
        self.log += f"--- {name} (exit {returncode})\n{log}"
        self.env.update(read_file_commands(files["env"]))
        self.path_additions += [line for line in files["path"].read_text().splitlines() if line.strip()]
        self.summary += files["summary"].read_text()
        outcome = "success" if returncode == 0 else "failure"
        return StepResult(name, outcome, returncode, read_file_commands(files["output"]), log)

    def _run(self, name: str, step: Mapping[str, Any]) -> StepResult:
        argv, env, cwd, files = self.prepare(step)
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=self.timeout,
                              check=False)
        return self.finish(name, done.returncode, done.stdout + done.stderr, files)

    def step(self, name: str) -> dict[str, Any]:
        """The action's step of that name."""
        for step in self.action["runs"]["steps"]:
            if step.get("name") == name:
                return dict(step)
        raise AssertionError(f"action.yml has no step named {name!r}")

    def _uses(self, name: str, step: Mapping[str, Any]) -> StepResult:
        pinned = PINNED.match(step["uses"])
        if not pinned:
            raise ExpressionError(f"step {name!r}: {step['uses']!r} is not pinned to a full commit SHA")
        action = pinned.group(1)
        if action not in self.stand_ins:
            raise ExpressionError(f"no stand-in for {action}")
        inputs = {k: self.render(v) for k, v in (step.get("with") or {}).items()}
        try:
            outputs = self.stand_ins[action](inputs, self)
        except StepFailed as exc:
            self.log += f"--- {name} (stand-in failed)\n{exc}\n"
            return StepResult(name, "failure", 1, {}, str(exc))
        self.log += f"--- {name} (stand-in)\n"
        return StepResult(name, "success", 0, outputs)

    # -------------------------------------------------------------- what a job shows

    def result(self, name: str) -> StepResult:
        for result in self.results:
            if result.name == name:
                return result
        raise AssertionError(f"no step named {name!r} in {[r.name for r in self.results]}")

    @property
    def exit_code(self) -> int:
        """The job's: 0, or the first failed step's code."""
        return next((r.exit_code or 1 for r in self.results if r.outcome == "failure"), 0)

    def annotations(self, level: str = "error") -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith(f"::{level}")]


def base_python() -> Path:
    """The interpreter under this virtualenv: what actions/setup-python would put on PATH."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    return base if base.is_file() else Path(shutil.which("python3") or sys.executable)
