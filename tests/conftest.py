"""Shared fixtures: a copy of the fixture service per test, the local images, the check that no file holds the
suite's secret, and the fixtures that put a test in the group that holds what a machine has once. The helpers
tests call live in tests/support (`from support import ...`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import FIXTURES, secret_hits
from testbed.backends import docker_api

# `./bootstrap test` runs this suite on 2 pytest-xdist workers (`--dist loadgroup --no-loadscope-reorder`). A test
# that uses what one machine has once asks for `fixed_ports` or `machine_wide`: all such tests form this one
# group, which runs on one worker, first, one test at a time, so no two of them overlap. Every other test keeps to
# auto ports and to runs whose owner is alive, which none of them can reach, and goes to whichever worker is free;
# a module's tests that share a module-scoped fixture (SSH hosts, a built wheel) stay together on one worker, so
# the fixture is built once.
MACHINE_WIDE = "machine-wide"


@pytest.fixture
def machine_wide() -> None:
    """The test uses or watches something every run on the machine shares, so no other such test may overlap it:
    a gc of every run, a run left without its owner or state file on purpose (another run's start would collect
    it), a signal sent on a schedule that a loaded machine would miss, or the machine's PostgreSQL templates."""


@pytest.fixture
def fixed_ports(machine_wide: None) -> None:
    """The test runs testbed on the CLI's fixed ports (15433/16380/14222, the default of `--ports`) past the
    point where they are checked or bound: only one such run fits on a machine at a time."""


def _group(item: pytest.Item) -> str | None:
    if "machine_wide" in getattr(item, "fixturenames", ()):
        return MACHINE_WIDE
    module = item.nodeid.split("::")[0]
    infos = getattr(item, "_fixtureinfo", None)
    defs = infos.name2fixturedefs.values() if infos is not None else ()
    if any(d.scope != "function" and d.baseid == module for ds in defs for d in ds):
        return module  # a fixture its module's tests share: built once, on one worker
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    # A stable sort: the machine-wide group first (its worker starts on it at once), then the layers slowest first.
    layers = ("e2e", "images", "integration", "unit")

    def rank(item: pytest.Item) -> int:
        if _group(item) == MACHINE_WIDE:
            return 0
        return 1 + next((n for n, layer in enumerate(layers) if f"/tests/{layer}/" in item.path.as_posix()),
                        len(layers))

    items.sort(key=rank)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A private copy of the fixture service, free to be broken by the test."""
    target = tmp_path / "basic"
    shutil.copytree(FIXTURES / "services" / "basic", target)
    return target


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def local_images() -> dict[str, str]:
    """Locally built stand-ins for the official images (tests/images/build.py): no registry is needed.
    Fails, never skips, without a Docker engine."""
    from images.build import ImageBuildError, ensure_images  # noqa: PLC0415

    if docker_api.engine_answers(timeout=5) is None:
        pytest.fail("no Docker engine answers: the Docker backend tests need one (they never skip)", pytrace=False)
    try:
        return ensure_images()
    except ImageBuildError as exc:
        pytest.fail(f"cannot build the local test images: {exc}", pytrace=False)


@pytest.fixture(autouse=True)
def _secret_never_lands_in_a_file(tmp_path: Path):
    """After every test: no file under its temporary folder (run folders included) holds the secret."""
    yield
    assert secret_hits(tmp_path) == [], "the suite's secret leaked into a file"
