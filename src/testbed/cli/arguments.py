"""The `testbed` command line: its commands, their options and help (testbed.cli.main runs them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from testbed import __version__
from testbed.core.errors import ExitCode

DEFAULT_LEASE = 8 * 3600


class _Parser(argparse.ArgumentParser):
    """Bad arguments are bad input like any other: one line and exit 10 (argparse's own 2 is pytest's
    "interrupted" in testbed's exit-code table)."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(ExitCode.CONFIG), f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="testbed",
        description=(
            "Real integration-test infrastructure: PostgreSQL, Dragonfly and NATS JetStream for a service's "
            "tests, the same way on a laptop, in GitHub Actions and on self-hosted runners."
        ),
    )
    parser.add_argument("--version", action="version", version=f"testbed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def service_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--service",
            type=Path,
            default=None,
            help="the service's folder, holding testbed.yml (default: the nearest testbed.yml here or above)",
        )
        sub.add_argument(
            "-v", "--verbose", action="count", default=0, help="show task output (capped at Ansible's -vv)"
        )

    def provisioning_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--backend",
            choices=("auto", "docker", "native"),
            default="auto",
            help="where the servers run: docker, native, or auto (Docker when its engine answers and every image is "
            "present or its registry answers, else native; the first line says why)",
        )
        sub.add_argument(
            "--ports",
            choices=("fixed", "auto"),
            default="fixed",
            help="fixed: 15433 / 16380 / 14222; auto: free ports (parallel runs on one host)",
        )
        sub.add_argument(
            "--secrets",
            choices=("auto", "env", "ssm"),
            default="auto",
            help="auto: ssm under GitHub Actions, the environment otherwise",
        )
        sub.add_argument(
            "--image",
            action="append",
            default=[],
            metavar="SERVER=IMAGE",
            help="override a server's image (Docker backend), e.g. postgres=postgres:15.8",
        )
        sub.add_argument("--pull", action="store_true", help="pull images even when present")
        sub.add_argument("--run-id", default="", help="the run's id (default: a fresh one)")
        sub.add_argument(
            "--run-folder",
            type=Path,
            default=None,
            metavar="DIR",
            help="where run folders go (default: the service's runs/)",
        )
        sub.add_argument(
            "--readiness-timeout",
            type=int,
            default=60,
            metavar="SECONDS",
            help="seconds each server has to answer its probe before the run fails with its log's tail",
        )

    def workers_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--workers",
            default=None,
            metavar="N|auto",
            help="pytest-xdist workers, each with its own share of every server (auto: the cores)",
        )

    def isolation_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--isolation",
            choices=("run", "worker", "test"),
            default=None,
            help="what starts from the freshly migrated state: each test, each pytest worker, or the run "
            "(default: tests.isolation, else worker)",
        )

    def remote_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--inventory",
            type=Path,
            default=None,
            metavar="FILE",
            help="run on a host of this Ansible inventory over SSH (see inventory/runners.example.yml)",
        )
        sub.add_argument("--limit", default="", metavar="HOST", help="the inventory host to run on")

    run = commands.add_parser("run", help="the whole pipeline, always tearing down")
    service_options(run)
    provisioning_options(run)
    remote_options(run)
    run.add_argument(
        "--keep-runner-dir", action="store_true", help="keep ansible-runner's private data dir (scrubbed) for debugging"
    )
    run.add_argument(
        "--shard", default="", metavar="K/N", help="run only the K-th of N groups of the suite (by recorded durations)"
    )
    run.add_argument(
        "--shards",
        default="",
        metavar="N|auto",
        help=(
            "run N shards at once and merge them (with --inventory/--limit GROUP: one play over its first N hosts, "
            "one shard each; auto: one per host)"
        ),
    )
    run.add_argument(
        "--durations",
        type=Path,
        default=None,
        metavar="FILE",
        help="the durations a shard splits by (default: the service's .test_durations; none: an even split)",
    )
    workers_option(run)
    isolation_option(run)
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")

    merge = commands.add_parser("merge", help="join shards' run folders into one report, coverage and durations")
    merge.add_argument("folders", nargs="+", type=Path, metavar="RUN_FOLDER", help="each shard's run folder")
    merge.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the merged report goes")
    merge.add_argument(
        "--service",
        type=Path,
        default=None,
        help="the service's folder, for coverage (default: the one merge runs in; never the one a shard records)",
    )

    up = commands.add_parser("up", help="bring servers up and migrate; leave them running under a lease")
    service_options(up)
    provisioning_options(up)
    remote_options(up)
    workers_option(up)
    up.add_argument(
        "--lease",
        type=int,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help="how long gc leaves the environment alone (default 8 h)",
    )

    test = commands.add_parser("test", help="run the tests against the environment `testbed up` left")
    service_options(test)
    workers_option(test)
    test.add_argument(
        "--no-reset",
        action="store_true",
        help="keep what earlier runs left in the servers (default: start from the freshly migrated state)",
    )
    isolation_option(test)
    test.add_argument(
        "--keep-failed",
        action="store_true",
        help="with --isolation test: keep each failing test's database (named in the summary and by `testbed env`)",
    )
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")

    down = commands.add_parser("down", help="tear the environment down")
    service_options(down)
    down.add_argument("--run-id", default="", help="a run to tear down (default: this service's `up`)")
    remote_options(down)

    status = commands.add_parser("status", help="what runs: backend, ports, health, age")
    status.add_argument(
        "--service", type=Path, default=None, help="only this service's runs (default: every run of this user)"
    )

    env = commands.add_parser("env", help="shell export lines for running pytest by hand or from an IDE")
    service_options(env)

    logs = commands.add_parser("logs", help="a server's log")
    service_options(logs)
    logs.add_argument("server", nargs="?", help="a server's name in testbed.yml (default: all)")

    gc = commands.add_parser("gc", help="remove what runs whose owner is gone (or that expired) left")
    gc.add_argument("--run-id-prefix", default="", help="only runs whose id starts with this")
    gc.add_argument(
        "--ttl",
        type=int,
        default=6 * 3600,
        metavar="SECONDS",
        help="collect runs older than this even if their owner lives (default 6 h)",
    )

    collections = commands.add_parser(
        "collections", help="install the Ansible collections a run needs (community.docker, amazon.aws)"
    )
    collections.add_argument(
        "action",
        choices=("install",),
        help="`install`: the collections a run needs, from the `ansible` release on PyPI",
    )
    collections.add_argument(
        "--path",
        type=Path,
        default=None,
        help="a collections path, as ansible-galaxy's -p (default: this Python's site-packages)",
    )
    return parser


def argv_of(command: str, args: argparse.Namespace, **replace: object) -> list[str]:
    """The options of a parsed `testbed COMMAND` as a command line again, from the parser's own definitions:
    each option that differs from its default, with `replace`'s values in place of the parsed ones (None: left
    out). Positional arguments (pytest's) are the caller's. A run hands its options to the runs it starts
    (--shards) this way, so that none is dropped."""
    values = {**vars(args), **replace}
    sub = next(
        action.choices[command] for action in parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    argv: list[str] = []
    for action in sub._actions:
        value = values.get(action.dest)
        if not action.option_strings or isinstance(action, argparse._HelpAction) or value is None:
            continue
        if value == action.default and action.dest not in replace:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._CountAction):
            argv += [flag] * int(value)
        elif isinstance(action, argparse._StoreTrueAction):
            argv += [flag] if value else []
        elif isinstance(action, argparse._AppendAction):
            argv += [f"{flag}={item}" for item in value]
        else:
            argv.append(f"{flag}={value}")
    return argv
