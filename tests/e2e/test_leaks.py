"""Issue 13: nothing a run writes or prints holds a secret (or a run of 8+ characters of one), whatever the
suite does with it; nothing from the command line is templated; a pass needs pytest's JUnit report; and a
run that fails before its tests still leaves a GitHub step summary."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest

from support import FIXTURES, clean_env, cli, image_args, leftovers, playbook, run_folder_of, without_masks
from support.secret_shapes import fragments, pem, pem_value, service_account_json, token_value, yaml_document
from testbed.core import junit, xml_input
from testbed.core.errors import ExitCode
from testbed.core.paths import runtime_root


def _hits(needles: list[str], roots: list[Path], texts: dict[str, str]) -> list[str]:
    found = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
        for path in files:
            data = path.read_bytes()
            found += [f"{needle} in {path}" for needle in needles if needle.encode() in data]
    for where, text in texts.items():
        found += [f"{needle} in {where}" for needle in needles if needle in text]
    return found


class _Watch:
    """Scans files for needles in a thread while a run goes on (the private secrets file excepted)."""

    def __init__(self, roots: list[Path], needles: list[str]) -> None:
        self.roots, self.needles = roots, [n.encode() for n in needles]
        self.hits: set[str] = set()
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for root in self.roots:
                try:
                    files = [root] if root.is_file() else [p for p in root.rglob("*") if "private" not in p.parts]
                except OSError:  # the folder went away while listed (teardown)
                    continue
                for path in files:
                    try:
                        data = path.read_bytes() if path.is_file() else b""
                    except OSError:
                        continue
                    self.hits |= {f"{n.decode()} in {path}" for n in self.needles if n in data}
            self.scans += 1

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _leaky(tmp_path: Path) -> Path:
    target = tmp_path / "leaky"
    shutil.copytree(FIXTURES / "services" / "leaky", target)
    return target


# ------------------------------------------------------------------ the redactor itself (no processes)










# ------------------------------------------------------------------ whole runs


def _run_leaky(tmp_path: Path, backend: str, github: bool, images: dict[str, str] | None = None):
    service, runs = _leaky(tmp_path), tmp_path / "runs"
    token, token_core = token_value()
    pem, pem_core = pem_value()
    run_id = f"leak-{secrets.token_hex(4)}"
    github_files = [tmp_path / "step_summary.md", tmp_path / "github_output"]
    extra = {"LEAKY_TOKEN": token, "LEAKY_PEM": pem}
    if github:
        for path in github_files:
            path.write_text("")
        extra |= {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(github_files[0]),
                  "GITHUB_OUTPUT": str(github_files[1]), "GITHUB_RUN_ID": "4242", "GITHUB_JOB": "leaks"}
    postgres_image = image_args({s: tag for s, tag in (images or {}).items() if s == "postgres"})
    runner_dir = runtime_root() / f"runner-{run_id}"
    needles = [token_core, pem_core, *fragments(token_core), *fragments(pem_core)]
    try:
        # While the run goes on: its runtime folder (but the 0600 source of the values) and pytest.log, which
        # is written through the redactor, never written and scrubbed later.
        with _Watch([runtime_root() / run_id, runs / run_id / "pytest.log"], needles) as watch:
            result = cli("run", "--service", str(service), "--backend", backend, "--ports", "auto",
                         "--secrets", "env", "--run-folder", str(runs), "--run-id", run_id, "--keep-runner-dir",
                         *postgres_image, env=clean_env(**extra), timeout=300)
        assert watch.scans > 0 and watch.hits == set()
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert "❌ Tests: 1 passed, 4 failed" in out, out
        folder = run_folder_of(out)
        for name in ("pytest.log", "junit.xml", "coverage.xml", "htmlcov/index.html", "report.json", "state.json"):
            assert (folder / name).is_file(), name
        # The failures did reach the log and the report, with the values masked.
        assert "Incorrect API key provided: ***" in (folder / "pytest.log").read_text()
        assert "Incorrect API key provided: ***" in (folder / "junit.xml").read_text()
        places = [folder, runner_dir, runtime_root() / run_id, *(github_files if github else [])]
        hits = _hits(needles, places, {"stdout": without_masks(out), "stderr": result.stderr})
        assert hits == []
        if github:
            assert "Incorrect API key provided: ***" in out  # the ::error annotation, masked
            assert "Failed in Tests" in github_files[0].read_text()
            assert "result=failed" in github_files[1].read_text()
    finally:
        shutil.rmtree(runner_dir, ignore_errors=True)
    assert leftovers(run_id) == []


@pytest.mark.slow
@pytest.mark.parametrize("github", [False, True], ids=["local", "github-actions"])
def test_native_run_leaks_no_secret_anywhere(tmp_path: Path, github: bool) -> None:
    _run_leaky(tmp_path, "native", github)


@pytest.mark.slow
def test_docker_run_leaks_no_secret_anywhere(tmp_path: Path, local_images: dict[str, str]) -> None:
    _run_leaky(tmp_path, "docker", True, local_images)


def test_short_secret_fails_before_anything_starts_in_one_line(tmp_path: Path) -> None:
    service = _leaky(tmp_path)
    pem, _ = pem_value()
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto", "--secrets", "env",
                 "--run-folder", str(tmp_path / "runs"), env=clean_env(LEAKY_TOKEN="s3cr3t", LEAKY_PEM=pem))
    assert result.returncode == ExitCode.SECRETS, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "testbed: error: secrets: LEAKY_TOKEN: value shorter than 8 characters, too short to redact safely "
        "from logs and reports; use a longer one"
    ]
    assert "s3cr3t" not in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ structured and escaped secrets (issue 23)


def _every_file_parses(folder: Path) -> list[Path]:
    """Every JSON and XML file of a run folder parses (XML as merge reads a shard's: no DTD)."""
    checked = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".xml")):
        if path.suffix == ".json":
            json.loads(path.read_bytes())
        else:
            xml_input.parse_xml(path.read_bytes())
        checked.append(path)
    return checked


def _run_as_a_shard_and_merge(tmp_path: Path, service: Path, env: dict[str, str], summary: str) -> Path:
    """A run of the leaky service as shard 1/1 (with --keep-runner-dir): its folder's JSON and XML files all
    parse, and `testbed merge` reads it. Returns the run folder; nothing of the run is left behind."""
    run_id = f"shape-{secrets.token_hex(4)}"
    runner_dir = runtime_root() / f"runner-{run_id}"
    try:
        result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto", "--secrets", "env",
                     "--run-folder", str(tmp_path / "runs"), "--run-id", run_id, "--shard", "1/1",
                     "--keep-runner-dir", env=env, timeout=300)
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert summary in out, out
        folder = run_folder_of(out)
        checked = [p.relative_to(folder).as_posix() for p in _every_file_parses(folder)]
        for name in ("state.json", "report.json", "durations.json", "diagnostics/readiness.json", "junit.xml",
                     "coverage.xml"):
            assert name in checked, checked
        report = json.loads((folder / "report.json").read_text())
        # testbed's own keys, untouched by the redaction: still numbers, the run's seconds and its failures.
        assert type(report["duration"]) is float and report["duration"] > 0 and report["tests"]["failed"] >= 4
        merged = cli("merge", str(folder), "--out", str(tmp_path / "merged"), "--service", str(service))
        assert merged.returncode == 1, merged.stdout + merged.stderr
        assert json.loads((tmp_path / "merged" / "report.json").read_text())["tests"] == report["tests"]
        _every_file_parses(tmp_path / "merged")
        (tmp_path / "outputs.txt").write_text(out + result.stderr + merged.stdout + merged.stderr)
    finally:
        if runner_dir.is_dir():  # scanned with the rest of tmp_path
            shutil.copytree(runner_dir, tmp_path / "runner", symlinks=True)
        shutil.rmtree(runner_dir, ignore_errors=True)
    assert leftovers(run_id) == []
    return folder


STRUCTURED = {"json": service_account_json, "yaml": yaml_document}


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(STRUCTURED))
def test_structured_secrets_keep_every_file_valid_and_leak_nothing(tmp_path: Path, shape: str) -> None:
    """A cloud service-account key (JSON) or a YAML document, beside a PEM key, printed, logged, asserted on
    and raised by the suite: every JSON and XML file of the run folder still parses, merge reads the shard,
    and no 8 characters of their random parts are in any file or output."""
    token, key = STRUCTURED[shape](), pem()
    service = _leaky(tmp_path)
    # A module the tests never import: coverage warns, with a link to its docs (https://, like the secrets' URLs).
    config = service / "testbed.yml"
    config.write_text(config.read_text().replace("coverage: [leaky_app]", "coverage: [leaky_app, leaky_unused]"))
    (service / "leaky_unused.py").write_text("VALUE = 1\n")
    folder = _run_as_a_shard_and_merge(tmp_path, service, clean_env(LEAKY_TOKEN=token.value, LEAKY_PEM=key.value),
                                       "❌ Tests: 1 passed, 4 failed")
    log = (folder / "pytest.log").read_text()
    assert "Incorrect API key provided: " in log
    # Ordinary text that shares the secrets' syntax is left alone.
    assert "see https://coverage.readthedocs.io/" in log, log
    assert "- generated xml file: " in log and "short test summary info" in log
    assert _hits([*token.fragments(), *key.fragments()], [tmp_path], {}) == []


FORMS_TESTS = """
import json
import os
import urllib.parse

import pytest


TOKEN = os.environ["LEAKY_TOKEN"]


@pytest.mark.parametrize("value", [TOKEN])
def test_as_an_id(value):
    assert value == "x"


def test_encoded():
    print("GET /api?" + urllib.parse.urlencode({"key": TOKEN}))
    print(urllib.parse.quote(TOKEN), urllib.parse.quote(TOKEN, safe=""))
    print(ascii(TOKEN), repr(TOKEN), TOKEN.encode("unicode_escape").decode(), json.dumps(TOKEN))
    assert {"query": urllib.parse.quote_plus(TOKEN), "ascii": ascii(TOKEN)} == {}
"""


@pytest.mark.slow
def test_percent_encoded_and_escaped_secrets_leak_nothing(tmp_path: Path) -> None:
    """A value with non-ASCII letters, URL syntax and a backslash at its end, printed percent-encoded,
    ascii()'d, unicode-escaped and JSON-escaped, and used as a parametrize id: none of it shows anywhere, the
    id is `[***]` in junit.xml, durations.json and pytest.log (its last character too), and every JSON and XML
    file parses."""
    core = secrets.token_hex(12)
    token = f"p\xe4ssw\xf6rd-\xfcn/{core}+&=?% x\\"
    service = _leaky(tmp_path)
    (service / "tests" / "test_forms.py").write_text(FORMS_TESTS)
    key, _ = pem_value()
    folder = _run_as_a_shard_and_merge(tmp_path, service, clean_env(LEAKY_TOKEN=token, LEAKY_PEM=key),
                                       "❌ Tests: 1 passed, 6 failed")
    test_id = "tests/test_forms.py::test_as_an_id[***]"
    assert test_id in json.loads((folder / "durations.json").read_text())
    assert test_id in (folder / "pytest.log").read_text()
    assert "test_as_an_id[***]" in [case.test.split("::")[-1] for case in junit.parse(folder / "junit.xml").failures]
    forms = {urllib.parse.quote(token), urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token),
             ascii(token)[1:-1], token.encode("unicode_escape").decode(), json.dumps(token)[1:-1]}
    heads = ["p\xe4ssw\xf6rd", "p\\xe4ssw\\xf6rd", "p%C3%A4ssw%C3%B6rd", "p\\u00e4ssw"]
    assert _hits([core, *fragments(core), *forms, *heads], [tmp_path], {}) == []


# ------------------------------------------------------------------ template injection


@pytest.mark.slow
def test_service_path_and_pytest_args_are_data_not_templates(tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    # A real folder whose name holds a template and a $VAR: both must be taken literally.
    service = tmp_path / "$HOME" / "svc{{ lookup('pipe', 'touch $TB_PWNED') }}"
    service.parent.mkdir()
    shutil.copytree(FIXTURES / "services" / "basic", service)
    run_id = f"inject-{secrets.token_hex(4)}"
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(tmp_path / "runs"), "--run-id", run_id,
                 env=clean_env(TB_PWNED=str(pwned)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ Tests: " in result.stdout and "failed" not in result.stdout, result.stdout
    assert not pwned.exists()

    run_id = f"inject-{secrets.token_hex(4)}"
    expression = "{{ lookup('pipe', 'touch $TB_PWNED') }}"
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(tmp_path / "runs"), "--run-id", run_id, "--", "-k", expression,
                 env=clean_env(TB_PWNED=str(pwned)))
    assert not pwned.exists()
    # pytest got the characters themselves: not a valid -k expression, a usage error naming it.
    assert result.returncode == ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert expression in (run_folder_of(result.stdout) / "pytest.log").read_text()
    assert leftovers(run_id) == []


# ------------------------------------------------------------------ a pass needs pytest's JUnit report


EXITS = {
    "test": {"tests/test_a_fails.py": "def test_fails():\n    assert False\n",
             "tests/test_b_exits.py": "import os\n\n\ndef test_exits():\n    os._exit(0)\n"},
    "conftest": {"tests/conftest.py": "import os\n\nos._exit(0)\n"},
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXITS))
def test_os_exit_zero_is_not_a_pass(tmp_path: Path, case: str) -> None:
    service = _leaky(tmp_path)
    shutil.rmtree(service / "tests")
    (service / "tests").mkdir()
    for name, text in EXITS[case].items():
        (service / name).write_text(text)
    (service / "testbed.yml").write_text(
        (service / "testbed.yml").read_text().split("secrets:")[0].replace("coverage: [leaky_app]", "coverage: []"))
    run_id = f"exit-{secrets.token_hex(4)}"
    result = cli("run", "--service", str(service), "--backend", "native", "--ports", "auto",
                 "--run-folder", str(tmp_path / "runs"), "--run-id", run_id)
    out = result.stdout
    assert result.returncode == ExitCode.INTERNAL_ERROR, out + result.stderr
    folder = run_folder_of(out)
    assert (f"❌ Tests: pytest exited 0 but wrote no JUnit report (a test or conftest called os._exit?); "
            f"see {folder / 'pytest.log'}") in out
    assert "✅ Tests" not in out
    assert leftovers(run_id) == []


# ------------------------------------------------------------------ a step summary for every failure


@pytest.mark.usefixtures("fixed_ports")
@pytest.mark.parametrize("case", ["config", "secrets", "provisioning"])
def test_early_failure_still_writes_the_step_summary(tmp_path: Path, case: str) -> None:
    service = _leaky(tmp_path)
    summary, output = tmp_path / "step_summary.md", tmp_path / "github_output"
    token, _ = token_value()
    pem, _ = pem_value()
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output),
                    **({} if case == "secrets" else {"LEAKY_TOKEN": token, "LEAKY_PEM": pem}))
    config = (service / "testbed.yml").read_text()
    if case == "config":
        (service / "testbed.yml").write_text(config + "bogus: 1\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        if case == "provisioning":  # a fixed port something listens on: preflight fails inside the playbook
            fixed = config.replace("    user: leaky", f"    port: {port}\n    user: leaky")
            (service / "testbed.yml").write_text(fixed)
        result = cli("run", "--service", str(service), "--backend", "native", "--ports", "fixed",
                     "--secrets", "env", "--run-folder", str(tmp_path / "runs"), env=env)
    expected = {"config": (ExitCode.CONFIG, "Preflight", "unknown key 'bogus'"),
                "secrets": (ExitCode.SECRETS, "Secrets", "LEAKY_TOKEN, LEAKY_PEM not set"),
                "provisioning": (ExitCode.PROVISIONING, "Preflight", f"PostgreSQL port {port} is taken")}[case]
    assert result.returncode == expected[0], result.stdout + result.stderr
    text = summary.read_text()
    assert f"**Failed in {expected[1]}:**" in text and expected[2] in text, text
    assert f"exit {int(expected[0])}" in text
    assert "result=failed" in output.read_text()


def test_summary_is_not_written_outside_github_actions(tmp_path: Path) -> None:
    service = _leaky(tmp_path)
    summary = tmp_path / "step_summary.md"
    result = cli("run", "--service", str(service), "--secrets", "env", "--run-folder", str(tmp_path / "runs"),
                 env=clean_env(GITHUB_STEP_SUMMARY=str(summary)))
    assert result.returncode == ExitCode.SECRETS
    assert not summary.exists()




@pytest.mark.slow
def test_playbook_without_the_wrapper_leaks_no_secret(tmp_path: Path) -> None:
    """ansible-playbook integration.yml alone: pytest.log is written through the redactor, junit and coverage
    files are scrubbed after pytest, the rest of the run's folders at teardown."""
    service, runs = _leaky(tmp_path), tmp_path / "runs"
    token, token_core = token_value()
    pem, pem_core = pem_value()
    run_id = f"leakpb-{secrets.token_hex(4)}"
    result = playbook("integration.yml", {"testbed_service": str(service), "testbed_backend": "native",
                                          "testbed_ports": "auto", "testbed_secrets": "env",
                                          "testbed_run_id": run_id, "testbed_run_root": str(runs)},
                      env=clean_env(LEAKY_TOKEN=token, LEAKY_PEM=pem))
    assert result.returncode != 0, result.stdout
    folder = runs / run_id
    assert "Incorrect API key provided: ***" in (folder / "junit.xml").read_text()
    needles = [token_core, pem_core, *fragments(token_core), *fragments(pem_core)]
    hits = _hits(needles, [folder, runtime_root() / run_id], {"stdout": result.stdout, "stderr": result.stderr})
    assert hits == []
    assert leftovers(run_id) == []


@pytest.mark.slow
def test_short_secret_through_the_playbook_is_one_line_exit_11(tmp_path: Path) -> None:
    """The resolution step (SSM or the environment, inside Ansible) refuses it too, naming the variable."""
    pem, _ = pem_value()
    result = playbook("integration.yml", {"testbed_service": str(_leaky(tmp_path)), "testbed_backend": "native",
                                          "testbed_ports": "auto", "testbed_secrets": "env",
                                          "testbed_run_root": str(tmp_path / "runs")},
                      env=clean_env(LEAKY_TOKEN="s3cr3t", LEAKY_PEM=pem))
    assert result.returncode != 0
    assert ("secrets: LEAKY_TOKEN: value shorter than 8 characters, too short to redact safely from logs and "
            "reports; use a longer one") in " ".join(result.stdout.split())
    assert "s3cr3t" not in result.stdout + result.stderr
