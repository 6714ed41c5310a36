"""Which measured files merge keeps from a shard's coverage data, and which service folder its reports read: never
one a shard chooses (the combine and the reports themselves run in tests/e2e/test_shards.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.core.errors import TestbedError
from testbed.shards import coverage


@pytest.fixture
def service(tmp_path: Path) -> Path:
    root = tmp_path / "svc"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("x = 1\n")
    (root / "testbed.yml").write_text("name: svc\n")
    return root


def test_a_measured_file_maps_to_the_service_s_own_python_source_only(service: Path, tmp_path: Path) -> None:
    main = str(service / "app" / "main.py")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "credentials").write_text("k")
    (service / "app" / "escape.py").symlink_to(tmp_path / "secret" / "credentials")
    assert coverage._source("app/main.py", None, service, []) == main  # relative_files
    assert coverage._source("/ci/work/svc/app/main.py", "/ci/work/svc", service, []) == main  # where it ran
    assert coverage._source("/ci/work/svcX/app/main.py", "/ci/work/svc", service, []) is None  # not under it
    assert coverage._source(str(tmp_path / "secret" / "credentials"), None, service, []) is None
    assert coverage._source("app/../../secret/credentials.py", None, service, []) is None
    assert coverage._source("app/escape.py", None, service, []) is None  # a link out of the service
    assert coverage._source("app/main.txt", None, service, []) is None
    assert coverage._source("app/main.py", None, service, [service / "app"]) is None  # a shard's or merge's folder


def test_the_service_folder_is_the_one_given_or_the_one_merge_runs_in_never_a_shard_s(
    service: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = tmp_path / "shard-1"
    shard.mkdir()
    assert coverage._service_dir(service, [shard]) == service.resolve()
    monkeypatch.chdir(service / "app")
    assert coverage._service_dir(None, [shard]) == service.resolve()
    (shard / "svc").mkdir()
    with pytest.raises(TestbedError, match="is in shard folder"):
        coverage._service_dir(shard / "svc", [shard])
    with pytest.raises(TestbedError, match="is not a folder; pass the service's folder"):
        coverage._service_dir(tmp_path / "nowhere", [shard])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TestbedError, match="pass --service DIR"):
        coverage._service_dir(None, [shard])
