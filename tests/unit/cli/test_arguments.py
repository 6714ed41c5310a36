"""The command line: bad arguments are one line and exit 10; a parsed run's options become a command line again,
none dropped (how --shards hands them to the runs it starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.cli import arguments
from testbed.core.errors import ExitCode


@pytest.mark.parametrize(("argv", "prog", "problem"), [
    (["run", "--backend", "bogus"], "testbed run", "argument --backend: invalid choice: 'bogus'"),
    (["run", "--ports", "sometimes"], "testbed run", "argument --ports: invalid choice: 'sometimes'"),
    (["bogus"], "testbed", "argument COMMAND: invalid choice: 'bogus'"),
    ([], "testbed", "the following arguments are required: COMMAND"),
])
def test_bad_arguments_exit_10_with_one_line(
    argv: list[str], prog: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        arguments.parser().parse_args(argv)
    assert done.value.code == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"{prog}: error: {problem}") and err.endswith(f"(see `{prog} --help`)\n")
    assert err.count("\n") == 1


def test_the_defaults_are_the_documented_ones() -> None:
    args = arguments.parser().parse_args(["run"])
    assert (args.service, args.backend, args.ports, args.secrets, args.readiness_timeout) == (
        None, "auto", "fixed", "auto", 60)
    assert arguments.parser().parse_args(["up"]).lease == arguments.DEFAULT_LEASE == 8 * 3600


def test_a_run_s_options_become_a_command_line_again_with_none_dropped() -> None:
    args = arguments.parser().parse_args([
        "run", "--service", "svc", "--ports", "auto", "--image", "postgres=pg:15", "--image", "nats=nats:2",
        "--keep-runner-dir", "-vv", "--shards", "3", "--readiness-timeout", "90", "--", "-k", "x"])
    argv = arguments.argv_of("run", args, shards=None, shard="1/3")
    assert argv == ["--service=svc", "--verbose", "--verbose", "--ports=auto", "--image=postgres=pg:15",
                    "--image=nats=nats:2", "--readiness-timeout=90", "--keep-runner-dir", "--shard=1/3"]
    again = arguments.parser().parse_args(["run", *argv])
    assert {k: v for k, v in vars(again).items() if k not in ("shard", "shards", "pytest_args")} == {
        k: (Path(v) if k == "service" else v) for k, v in vars(args).items()
        if k not in ("shard", "shards", "pytest_args")}
