"""testbed.yml validation without a process: each problem named in one line (exit 10), all of them at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.config_files import CATALOGUE, config_problem, load_config
from testbed.config import servers as config_servers
from testbed.config import service
from testbed.config import workers as config_workers
from testbed.core import paths
from testbed.core.errors import ExitCode, TestbedError


def test_a_minimal_file_gets_every_catalogue_server_with_its_defaults(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, "name: minimal\n")
    assert list(loaded.servers) == list(CATALOGUE)
    assert loaded.servers["postgres"]["port"] == CATALOGUE["postgres"]["port"]
    assert (loaded.tests.paths, loaded.tests.timeout, loaded.install) == (["tests"], 300, "auto")
    assert loaded.migrations is None


def test_settings_override_one_key_and_keep_the_rest_of_a_nested_default(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, """\
        servers: [postgres]
        settings:
          postgres:
            port: 25433
            server_settings: {work_mem: 8MB}
        """)
    assert list(loaded.servers) == ["postgres"]
    postgres = loaded.servers["postgres"]
    assert postgres["port"] == 25433 and postgres["user"] == CATALOGUE["postgres"]["user"]
    assert postgres["server_settings"] == {**CATALOGUE["postgres"]["server_settings"], "work_mem": "8MB"}


@pytest.mark.parametrize(("text", "expected"), [
    ("colour: blue\n", "unknown key 'colour' (allowed: name, servers, settings, migrations, tests, install, "
                       "secrets, env)"),
    ("tests: {timeout: '30'}\n", "'tests.timeout' must be an integer, got str"),
    ("tests: {timeout: true}\n", "'tests.timeout' must be an integer, got bool"),
    ("tests: {paths: [1, 2]}\n", "'tests.paths' must be a list of strings"),
    ("tests: {deadline: 0}\n", "'tests.deadline' must be at least 1 second, got 0"),
    ("servers: postgres\n", "'servers' must be a list, got str"),
    ("servers: [mysql]\n", "unknown server 'mysql' in 'servers' (known: postgres, dragonfly, nats)"),
    ("servers: [postgres]\nsettings: {nats: {port: 1}}\n", "'settings.nats' is set but 'nats' is not in 'servers'"),
    ("settings: {redis: {}}\n", "unknown server 'settings.redis' (known: postgres, dragonfly, nats)"),
    ("settings: {postgres: 5432}\n", "'settings.postgres' must be a mapping, got int"),
    ("settings: {postgres: {port: '5432'}}\n", "'settings.postgres.port' must be an integer, got str"),
    ("settings: {postgres: {title: Pg}}\n", "unknown key 'settings.postgres.title' (allowed: port, user,"),
    ("name: 'my service'\n", "'name' must be letters, digits, '.', '_' or '-', got 'my service'"),
    ("install: '  '\n", "'install' must be one of auto, poetry, pip, none or a command"),
    ("env: {1ST: x}\n", "'env.1ST' is not a valid environment variable name"),
    ("env: {DEBUG: true}\n", "'env.DEBUG' must be a string, got bool"),
    ("secrets: {TOKEN: {optional: true}}\n", "'secrets.TOKEN.parameter' is required (the SSM parameter name)"),
    ("secrets: {TOKEN: 5}\n", "'secrets.TOKEN' must be an SSM parameter name or a mapping with 'parameter'"),
    ("env: {TOKEN: x}\nsecrets: {TOKEN: /a/b}\n", "'TOKEN' is both in 'env' and in 'secrets'; keep it in one"),
    ("migrations: nowhere\n", "'migrations' folder"),
    ("migrations: {schema: public}\n", "'migrations.schema' 'public' is on the service's search_path"),
    ("migrations: {schema: pg_mine}\n", "'migrations.schema' must be lowercase letters, digits and '_'"),
    ("migrations: {folder: m, colour: x}\n", "unknown key 'migrations.colour' (allowed: folder, schema)"),
], ids=lambda value: value.split(":")[0] if value.endswith("\n") else None)
def test_each_problem_is_named_with_its_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_problem(tmp_path, text)


def test_migrations_need_postgres(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    assert "'migrations' needs 'postgres' in 'servers'" in config_problem(tmp_path, "servers: [nats]\n")


def test_every_problem_is_named_in_the_one_line(tmp_path: Path) -> None:
    message = config_problem(tmp_path, "colour: blue\nservers: [mysql]\ntests: {timeout: x}\nenv: {1ST: x}\n")
    assert message.startswith(f"{tmp_path / 'testbed.yml'}: ")
    for part in ("unknown key 'colour'", "unknown server 'mysql'", "'tests.timeout' must be an integer",
                 "'env.1ST' is not a valid"):
        assert part in message, message
    assert message.count("; ") == 3, message


def test_a_server_listed_twice_is_named(tmp_path: Path) -> None:
    """`servers: [postgres, postgres]` used to load as one postgres: a slip that hid what was meant."""
    message = config_problem(tmp_path, "servers: [postgres, nats, postgres]\n")
    assert message == f"{tmp_path / 'testbed.yml'}: 'servers' lists 'postgres' twice: list each server once"


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    message = config_problem(tmp_path, "name: ok\nservers: [postgres\n")
    assert message.startswith(f"{tmp_path / 'testbed.yml'} line ") and "not valid YAML" in message, message


def test_a_file_that_is_not_a_mapping_says_what_it_must_be(tmp_path: Path) -> None:
    assert "must be a mapping of keys (name, servers, settings, ...)" in config_problem(tmp_path, "- postgres\n")


def test_a_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(TestbedError) as caught:
        service.load_service_config(tmp_path, CATALOGUE)
    assert str(caught.value).startswith(f"no testbed.yml in {tmp_path}: create one")


def _declaring(*names: str, env: str = "") -> str:
    """A testbed.yml declaring a server by each name (in that order) beside the catalogue's postgres."""
    servers = "".join(f"  - {name!r}:\n      port: {15000 + i}\n      native: {{command: [x]}}\n{env}"
                      for i, name in enumerate(names))
    return f"servers:\n  - postgres\n{servers}"


@pytest.mark.parametrize("key", ["X=1;touch /tmp/pwned;Y", "A B", "1ST", "PATH\nEVIL"])
def test_a_declared_servers_env_keys_follow_the_rule_of_the_top_level_env(tmp_path: Path, key: str) -> None:
    """`testbed env` printed `export X=1;touch /tmp/pwned;Y=…` (a command when evaluated) and `testbed test`
    ended in `internal error: ValueError`: the key is refused like a top-level one, in one line."""
    message = config_problem(tmp_path, _declaring("s3", env=f"      env: {{{json.dumps(key)}: x}}\n"))
    shown = key if key.isprintable() else repr(key)
    assert f"'servers.s3.env.{shown}' is not a valid environment variable name" in message, message
    top_level = config_problem(tmp_path, f"env: {{{json.dumps(key)}: x}}\n")
    assert f"'env.{shown}' is not a valid environment variable name" in top_level, top_level


@pytest.mark.parametrize(("names", "reserved", "why"), [
    (["nats-gw1"], "nats-gw1", "it names pytest worker gw1's instance of 'nats'"),
    (["postgres-gw63"], "postgres-gw63", "it names pytest worker gw63's instance of 'postgres'"),
    (["s3-gw1", "s3"], "s3-gw1", "it names pytest worker gw1's instance of 's3'"),  # declared after it, too
    (["private"], "private", "the run's runtime folder holds its secrets folder under that name"),
    (["state.json"], "state.json", "the run's runtime folder holds its state file under that name"),
    (["sockets"], "sockets", "the run's runtime folder holds a file of postgres's under that name"),
    (["tests.lock"], "tests.lock", "the run's runtime folder holds the lock `testbed test` holds under that name"),
])
def test_a_reserved_server_name_is_refused_saying_what_holds_it(
    tmp_path: Path, names: list[str], reserved: str, why: str
) -> None:
    """`nats-gw1` silently became worker gw1's NATS (a plain TCP listener: no NATS for it); `private` wiped the
    run's secrets (exit 11); `state.json` left a folder every gc reported and none removed."""
    message = config_problem(tmp_path, _declaring(*names))
    assert f"'servers.{reserved}' is reserved: {why}; name the server otherwise" in message, message


def test_the_reserved_names_are_those_testbed_uses() -> None:
    """Taken from where each is defined, so a renamed or added entry is reserved without a second list."""

    reserved = config_servers._reserved_names(["postgres", "s3"])
    expected = {*paths.RUNTIME_ENTRIES,
                config_workers.instance_name("s3", 1),
                config_workers.instance_name("postgres", config_workers.MAX_WORKERS - 1)}
    assert expected <= set(reserved)


@pytest.mark.parametrize("name", ["S3", "my-s3", "s3.cache", "_s3", "3s", "s" * 33, "s3 cache", "ünï"])
def test_a_declared_server_name_must_be_a_simple_identifier(tmp_path: Path, name: str) -> None:
    message = config_problem(tmp_path, _declaring(name))
    assert f"'servers' entry {name!r} must be a simple name: a lowercase letter, then lowercase letters, digits or " \
           "'_', at most 32" in message, message


def test_a_simple_name_is_declared(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, _declaring("s3", "object_store_2"))
    assert list(loaded.servers) == ["postgres", "s3", "object_store_2"]


@pytest.mark.parametrize(
    "text",
    [
        'name: "svc\\n"\n',  # a service name
        'name: svc\nservers:\n  - "cache\\n": {command: [memcached, -p, "{{ port }}"]}\n',  # a declared server's name
        'name: svc\nenv:\n  "TOKEN\\n": x\n',  # an environment name
    ],
)
def test_a_name_with_a_trailing_newline_is_refused(tmp_path: Path, text: str) -> None:
    """`$` matches before a final newline: every name is checked whole (a newline would end a config line)."""
    assert "\\n" in config_problem(tmp_path, text)


def test_a_run_id_with_a_trailing_newline_is_refused() -> None:
    from testbed.run.store import check_run_id  # noqa: PLC0415

    assert check_run_id("abc") == "abc"
    with pytest.raises(TestbedError, match="run id 'abc\\\\n'"):
        check_run_id("abc\n")


# ------------------------------------------------------------------------------ the bookkeeping schema


@pytest.fixture
def service_dir(service: Path) -> Path:
    """conftest's copy of the fixture service (named apart from the module under test)."""
    return service


def test_migrations_schema_is_read_from_the_migrations_mapping(service_dir: Path) -> None:
    config = service_dir / "testbed.yml"
    text = config.read_text()
    assert service.load_service_config(service_dir, CATALOGUE).migrations_schema == "testbed_migrations"

    config.write_text(text.replace("migrations: migrations", "migrations: {folder: migrations, schema: ops_books}"))
    loaded = service.load_service_config(service_dir, CATALOGUE)

    assert (loaded.migrations, loaded.migrations_schema) == (service_dir / "migrations", "ops_books")
    assert service.ServiceConfig.from_dict(loaded.as_dict()).migrations_schema == "ops_books"


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ("{schema: public}", "'migrations.schema' 'public' is on the service's search_path"),
        ("{schema: basic}", "'migrations.schema' 'basic' is on the service's search_path"),  # the user: "$user"
        ("{schema: Ops-Books}", "'migrations.schema' must be lowercase letters, digits and '_'"),
        ("{schema: pg_books}", "not starting with 'pg_'"),
        ("{folder: nowhere}", "'migrations' folder"),
        ("{table: x}", "unknown key 'migrations.table' (allowed: folder, schema)"),
    ],
)
def test_a_bad_migrations_mapping_is_refused(service_dir: Path, mapping: str, expected: str) -> None:
    config = service_dir / "testbed.yml"
    config.write_text(config.read_text().replace("migrations: migrations", f"migrations: {mapping}"))

    with pytest.raises(TestbedError) as info:
        service.load_service_config(service_dir, CATALOGUE)

    assert info.value.exit_code == ExitCode.CONFIG
    assert expected in str(info.value)
