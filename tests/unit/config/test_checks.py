"""A declared server's command templates are checked in preflight, before anything starts: each problem is
named by its place in the declaration, in the one line of exit 10 (they used to surface only at launch)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testbed.config import catalogue
from testbed.config import service as config_service
from testbed.config.checks import check_before_start
from testbed.core.errors import ExitCode, TestbedError

CATALOGUE = catalogue.load_catalogue()


def _service(tmp_path: Path, declaration: str) -> config_service.ServiceConfig:
    (tmp_path / "tests").mkdir()
    text = "name: svc\ninstall: none\nservers:\n  - s3:\n" + textwrap.indent(textwrap.dedent(declaration), " " * 6)
    (tmp_path / "testbed.yml").write_text(text, encoding="utf-8")
    return config_service.load_service_config(tmp_path, CATALOGUE)


def test_every_template_of_a_declaration_renders_in_preflight(tmp_path: Path) -> None:
    service = _service(tmp_path, """\
        port: 15000
        native: {command: [moto_server, -H, "{{ host }}", -p, "{{ port }}", --data, "{{ data_dir }}"]}
        image: moto:5
        command: [-H, "{{ host }}", -p, "{{ port }}"]
        ready: {command: [curl, -fs, "{{ url }}/moto-api/", "{{ host }}:{{ port }}"]}
        """)
    check_before_start(service, environ={})  # nothing to say


def test_unknown_names_in_each_command_are_named_by_their_key(tmp_path: Path) -> None:
    service = _service(tmp_path, """\
        port: 15000
        native: {command: [moto_server, -H, "{{ hots }}", -p, "{{ port }}"]}
        image: moto:5
        command: [-p, "{{ port }}", "{{ data_dir }}"]
        ready: {command: [probe, "{{ port }}", "{{ s3.url }}"]}
        """)
    with pytest.raises(TestbedError) as caught:
        check_before_start(service, environ={})
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "\n" not in message
    assert "'servers.s3.native.command[2]': cannot render '{{ hots }}': 'hots' is undefined" in message, message
    # Inside its container a server has no host data folder: data_dir is not among the container's names.
    assert "'servers.s3.command[2]': cannot render '{{ data_dir }}': 'data_dir' is undefined" in message, message
    assert "'servers.s3.ready.command[2]': cannot render '{{ s3.url }}': 's3' is undefined" in message, message
    for good in ("native.command[4]", "servers.s3.command[1]", "ready.command[1]"):
        assert good not in message, message


def test_a_template_syntax_error_is_named_too(tmp_path: Path) -> None:
    service = _service(tmp_path, """\
        port: 15000
        native: {command: [memcached, -p, "{{ port "]}
        """)
    with pytest.raises(TestbedError) as caught:
        check_before_start(service, environ={})
    assert "'servers.s3.native.command[2]': cannot render '{{ port '" in str(caught.value)
