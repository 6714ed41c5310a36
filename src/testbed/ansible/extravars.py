"""Extra variables passed to a playbook as data: every string is tagged `!unsafe`, so Ansible never
templates a path, an argument or a name that came from the command line, the config or the environment
(`--service "x{{ lookup('pipe', …) }}"` stays those characters). Only testbed's own Jinja renders the
documented templated keys (config.py)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class _UnsafeDumper(yaml.SafeDumper):
    """YAML whose strings all carry Ansible's `!unsafe` tag."""


def _unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", value, style='"')


_UnsafeDumper.add_representer(str, _unsafe_str)


def dump(values: Mapping[str, Any]) -> str:
    return yaml.dump(dict(values), Dumper=_UnsafeDumper, allow_unicode=True, sort_keys=True)


def write(path: Path, values: Mapping[str, Any]) -> Path:
    """The extravars file, 0600 (it sits in ansible-runner's 0700 private folder)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(dump(values))
    return path


def cmdline(path: Path) -> str:
    """ansible-runner's `cmdline` (split with shlex) that loads the file as extra vars."""
    return f"-e {shlex.quote('@' + str(path))}"
