"""What a wrapper command asks of the playbooks (Options), and the playbook variables it becomes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Options:
    """What a wrapper command asks of the playbooks."""

    service: Path
    playbook: str = "playbooks/integration.yml"
    backend: str = "auto"
    ports: str = "fixed"
    secrets: str = "auto"
    run_id: str = ""
    run_root: Path | None = None
    images: dict[str, str] = field(default_factory=dict)
    pull: bool = False
    verbose: int = 0
    pytest_args: list[str] = field(default_factory=list)
    lease_seconds: int = 0
    readiness_timeout: int = 60
    keep_runner_dir: bool = False
    teardown: str = "always"  # always (run) | on_failure (up) | never (test: the environment stays)
    inventory: Path | None = None  # a remote host's inventory (with limit): the playbook tears down there
    limit: str = ""
    extravars: dict[str, Any] = field(default_factory=dict)
    # One play over these hosts, each running one shard (testbed_shards): its own lines, report and run id.
    shard_hosts: list[str] = field(default_factory=list)


def extravars_of(options: Options, run_id: str, run_root: Path, source: str, remote: bool) -> dict[str, Any]:
    """The playbook variables of a wrapper run (passed as data: see extravars_file)."""
    return {
        "testbed_service": str(options.service.resolve()),
        "testbed_backend": options.backend,
        "testbed_ports": options.ports,
        "testbed_run_id": run_id,
        "testbed_run_root": str(run_root),
        "testbed_secrets": source,
        "testbed_images": options.images,
        "testbed_pull": options.pull,
        "testbed_owner_pid": 0 if remote else os.getpid(),
        "testbed_pytest_args": options.pytest_args,
        "testbed_lease_seconds": options.lease_seconds,
        "testbed_readiness_timeout": options.readiness_timeout,
        **({"testbed_hosts": options.limit} if remote and options.limit else {}),
        **options.extravars,
    }
