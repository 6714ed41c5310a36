"""The host: who the servers run as, where a server binary is, and a preparation step's failure named (a full disk
as such)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.core import host
from testbed.core.errors import ExitCode, TestbedError
from testbed.core.files import DiskFull


def test_the_servers_never_run_as_root() -> None:
    account = host.server_account()  # as root: testbed's own unprivileged account (PostgreSQL refuses root)
    assert account.uid != 0
    assert host.as_account(host.invoking_account()) == {}  # ourselves: nothing to switch
    expected = {} if account.is_self else {"user": account.uid, "group": account.gid, "extra_groups": []}
    assert host.as_account(account) == expected


def test_a_binary_is_found_on_path_or_in_sbin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "my-server").write_text("#!/bin/sh\n")
    (tmp_path / "my-server").chmod(0o755)
    assert host.which("my-server") == str(tmp_path / "my-server")
    assert host.which("no-such-server-anywhere") is None
    assert host.which("useradd") == "/usr/sbin/useradd"  # only in sbin, not on this PATH: found there


def test_a_failed_step_names_itself_and_its_last_line(tmp_path: Path) -> None:
    with pytest.raises(TestbedError) as caught:
        host.run_as(host.invoking_account(), ["sh", "-c", "echo first >&2; echo 'bad flag' >&2; exit 3"], "initdb",
                    where=tmp_path)
    assert (str(caught.value), caught.value.exit_code) == ("initdb failed: bad flag", ExitCode.PROVISIONING)


def test_a_step_that_ran_out_of_space_is_a_full_disk(tmp_path: Path) -> None:
    with pytest.raises(DiskFull):
        host.full_disk(f"could not write: {os.strerror(28)}", tmp_path)
    host.full_disk(f"could not write: {os.strerror(28)}", None)  # nowhere written: not a disk to name
    host.full_disk("syntax error", tmp_path)
