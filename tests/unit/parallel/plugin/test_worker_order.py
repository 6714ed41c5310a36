"""The order pytest-xdist's workers take the tests in, given the durations earlier runs recorded: the pure
function, and real pytest-xdist (worksteal, 2 workers) running a suite through the plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.parallel import workers
from testbed.parallel.plugin.testbed_workers import balanced_order

IDS = ["t.py::a", "t.py::b", "t.py::c", "t.py::d"]


def _chunks(order: list[int], sizes: list[int]) -> list[list[int]]:
    chunks, start = [], 0
    for size in sizes:
        chunks.append(order[start : start + size])
        start += size
    return chunks


def test_each_chunk_gets_an_equal_share_and_runs_longest_first() -> None:
    # b (4 s) and d (3 s) are the long ones; the collection order runs each last in its chunk.
    order = balanced_order(IDS, {"t.py::a": 1.0, "t.py::b": 4.0, "t.py::c": 2.0, "t.py::d": 3.0}, 2)
    assert _chunks(order, [2, 2]) == [[1, 0], [3, 2]]  # b then a (5 s); d then c (5 s)


def test_chunks_have_the_sizes_worksteal_hands_out() -> None:
    ids = [f"t.py::{n}" for n in range(7)]
    order = balanced_order(ids, {name: float(n) for n, name in enumerate(ids)}, 3)
    assert sorted(order) == list(range(7))
    chunks = _chunks(order, [2, 2, 3])  # 7 // 3, then 5 // 2, then the 3 left
    assert [ids[chunk[0]] for chunk in chunks] == ["t.py::6", "t.py::5", "t.py::4"]  # the longest lead
    assert all(chunk == sorted(chunk, reverse=True) for chunk in chunks)


def test_a_test_with_no_recorded_duration_weighs_the_average() -> None:
    order = balanced_order(IDS, {"t.py::a": 5.0, "t.py::b": 1.0}, 2)  # c and d weigh 3 s each
    assert _chunks(order, [2, 2]) == [[0, 1], [2, 3]]  # 6 s each; weighed 0 s, c and d would join b and a


@pytest.mark.parametrize(("durations", "count"), [({}, 2), ({"t.py::d": 9.0}, 1)])
def test_no_durations_or_one_worker_keeps_the_collection_order(durations: dict[str, float], count: int) -> None:
    assert balanced_order(IDS, durations, count) == [0, 1, 2, 3]


SUITE = """
import os

def _ran(name):
    with open(os.environ["RAN_LOG"], "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + " " + name + "\\n")

def test_a(): _ran("a")
def test_b(): _ran("b")
def test_c(): _ran("c")
def test_d(): _ran("d")
"""


def _run_suite(tmp_path: Path, durations: dict[str, float] | None) -> dict[str, list[str]]:
    (tmp_path / "test_suite.py").write_text(SUITE, encoding="utf-8")
    log = tmp_path / "ran.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TESTBED_"))}
    env |= {"PYTHONPATH": str(workers.PLUGIN_DIR), "RAN_LOG": str(log)}
    if durations is not None:
        (tmp_path / "durations.json").write_text(json.dumps(durations), encoding="utf-8")
        env[workers.DURATIONS_VARIABLE] = str(tmp_path / "durations.json")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", workers.PLUGIN, "-n", "2", "--dist", "worksteal", "-q", "-p",
         "no:cacheprovider", "-p", "no:randomly", str(tmp_path / "test_suite.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ran: dict[str, list[str]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        worker, name = line.split()
        ran.setdefault(worker, []).append(name)
    return ran


def test_real_workers_split_the_long_tests_and_start_with_them(tmp_path: Path) -> None:
    # c (4 s) and d (3 s), last in the file, are the long ones.
    long_last = {"test_suite.py::test_a": 1.0, "test_suite.py::test_b": 2.0, "test_suite.py::test_c": 4.0}
    ran = _run_suite(tmp_path, long_last | {"test_suite.py::test_d": 3.0})
    assert sorted(ran.values()) == [["c", "a"], ["d", "b"]]


def test_without_durations_the_long_tests_share_a_worker(tmp_path: Path) -> None:
    # The control: xdist's own contiguous chunks put c and d (the long ones above) on one worker, last.
    ran = _run_suite(tmp_path, None)
    assert sorted(ran.values()) == [["a", "b"], ["c", "d"]]
