"""Extra variables passed as data: every string tagged `!unsafe` (Ansible never templates it), written 0600, loaded
with `-e @file`."""

from __future__ import annotations

import contextlib
import shlex
import stat
from pathlib import Path

import yaml

from testbed.ansible import extravars


class _Unsafe(str):
    """A string Ansible will never template (what `!unsafe` loads as)."""


class _UnsafeLoader(yaml.SafeLoader):
    """Reads `!unsafe` back the way Ansible does."""


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: _Unsafe(loader.construct_scalar(node)))


def _strings(value: object) -> list[object]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*_strings(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_every_string_is_unsafe_however_deep_and_other_types_stay_as_they_are() -> None:
    values = {"testbed_service": "x{{ lookup('pipe', 'id') }}", "testbed_pytest_args": ["-k", "{{ x }}"],
              "testbed_images": {"postgres": "pg:15"}, "testbed_pull": False, "testbed_lease_seconds": 60}
    loaded = yaml.load(extravars.dump(values), Loader=_UnsafeLoader)
    assert loaded == values
    strings = _strings(loaded)
    assert len(strings) == 10 and all(type(s) is _Unsafe for s in strings), strings  # keys included


def test_the_file_is_private_and_replaces_a_link_s_target_never(tmp_path: Path) -> None:
    path = extravars.write(tmp_path / "extravars.yml", {"a": "b"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '!unsafe "a": !unsafe "b"\n'
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link.yml").symlink_to(victim)
    with contextlib.suppress(OSError):  # refused, or the link replaced: either way the target is untouched
        extravars.write(tmp_path / "link.yml", {"a": "b"})
    assert victim.read_text() == "keep"  # O_NOFOLLOW: never written through


def test_the_command_line_loads_the_file_whatever_its_path() -> None:
    line = extravars.cmdline(Path("/tmp/a dir/extra vars.yml"))
    assert shlex.split(line) == ["-e", "@/tmp/a dir/extra vars.yml"]
