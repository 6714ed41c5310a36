"""Configuration comes from the environment; a missing required variable stops the start."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agent_executor import __main__ as entrypoint
from agent_executor.config import ConfigError, Settings
from agent_executor.worker import Worker
from tests.integration.harness import Harness, settings_env

REQUIRED = [
    "POSTGRES_HOST",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "DRAGONFLY_HOST",
    "NATS_URL",
    "OPENAI_API_KEY",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_variable_is_named(settings: Settings, name: str) -> None:
    env = settings_env(settings)
    del env[name]
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_worker_entrypoint_refuses_to_start_without_api_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SystemExit, match="OPENAI_API_KEY"):
        entrypoint.main()


def test_settings_from_environment(settings: Settings) -> None:
    env = settings_env(settings) | {
        "OPENAI_BASE_URL": "http://llm.invalid/v1/",
        "DISABLE_VAULT_AUTH": "true",
        "TESTING": "TRUE",
        "AGENT_EXECUTOR_CONCURRENCY": "2",
    }
    del env["DRAGONFLY_PORT"]
    parsed = Settings.from_env(env)
    assert parsed.openai_base_url == "http://llm.invalid/v1"
    assert parsed.disable_vault_auth
    assert parsed.testing
    assert parsed.concurrency == 2
    assert parsed.dragonfly_port == 6379
    assert parsed.requested_subject == f"{settings.subject_prefix}.requested"
    assert parsed.deadletter_subject == f"{settings.subject_prefix}.deadletter"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("POSTGRES_PORT", "five", "must be an integer"),
        ("AGENT_EXECUTOR_ACK_WAIT_S", "soon", "must be a number"),
        ("TESTING", "maybe", "must be true or false"),
        ("AGENT_EXECUTOR_CONCURRENCY", "0", "at least 1"),
    ],
)
def test_invalid_values_are_rejected(
    settings: Settings, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{message}"):
        Settings.from_env(settings_env(settings) | {name: value})


async def test_worker_fails_fast_when_a_server_is_unreachable(harness: Harness) -> None:
    with pytest.raises(RedisConnectionError):
        await Worker.connect(replace(harness.settings, dragonfly_port=9))
