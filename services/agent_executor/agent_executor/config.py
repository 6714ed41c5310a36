"""Settings read from the process environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from psycopg.conninfo import make_conninfo

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """A required setting is missing or a value cannot be parsed."""


@dataclass(frozen=True)
class Settings:
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    postgres_db: str
    dragonfly_host: str
    dragonfly_port: int
    nats_url: str
    openai_api_key: str
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    disable_vault_auth: bool = False
    testing: bool = False
    # JetStream layout: one stream captures every subject under `subject_prefix`.
    stream: str = "AGENT"
    subject_prefix: str = "agent.execute"
    durable: str = "agent-executor"
    ack_wait_s: float = 30.0
    max_deliver: int = 10
    concurrency: int = 4
    # In-flight lease in Dragonfly; refreshed while an event is being processed.
    lease_ttl_ms: int = 15_000
    default_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    llm_max_retries: int = 2
    llm_backoff_s: float = 0.5

    @property
    def requested_subject(self) -> str:
        return f"{self.subject_prefix}.requested"

    @property
    def completed_subject(self) -> str:
        return f"{self.subject_prefix}.completed"

    @property
    def failed_subject(self) -> str:
        return f"{self.subject_prefix}.failed"

    @property
    def deadletter_subject(self) -> str:
        return f"{self.subject_prefix}.deadletter"

    @property
    def postgres_conninfo(self) -> str:
        # Key/value conninfo; psycopg quotes values itself.
        return make_conninfo(
            host=self.postgres_host,
            port=self.postgres_port,
            user=self.postgres_user,
            password=self.postgres_password,
            dbname=self.postgres_db,
            application_name="agent_executor",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        settings = cls(
            postgres_host=env.required("POSTGRES_HOST"),
            postgres_port=env.integer("POSTGRES_PORT", 5432),
            postgres_user=env.required("POSTGRES_USER"),
            postgres_password=env.required("POSTGRES_PASSWORD"),
            postgres_db=env.required("POSTGRES_DB"),
            dragonfly_host=env.required("DRAGONFLY_HOST"),
            dragonfly_port=env.integer("DRAGONFLY_PORT", 6379),
            nats_url=env.required("NATS_URL"),
            openai_api_key=env.required("OPENAI_API_KEY"),
            openai_base_url=env.get("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL).rstrip("/"),
            disable_vault_auth=env.boolean("DISABLE_VAULT_AUTH", False),
            testing=env.boolean("TESTING", False),
            stream=env.get("AGENT_EXECUTOR_STREAM", cls.stream),
            subject_prefix=env.get("AGENT_EXECUTOR_SUBJECT_PREFIX", cls.subject_prefix),
            durable=env.get("AGENT_EXECUTOR_DURABLE", cls.durable),
            ack_wait_s=env.number("AGENT_EXECUTOR_ACK_WAIT_S", cls.ack_wait_s),
            max_deliver=env.integer("AGENT_EXECUTOR_MAX_DELIVER", cls.max_deliver),
            concurrency=env.integer("AGENT_EXECUTOR_CONCURRENCY", cls.concurrency),
            lease_ttl_ms=env.integer("AGENT_EXECUTOR_LEASE_TTL_MS", cls.lease_ttl_ms),
            default_model=env.get("AGENT_EXECUTOR_DEFAULT_MODEL", cls.default_model),
            llm_timeout_s=env.number("AGENT_EXECUTOR_LLM_TIMEOUT_S", cls.llm_timeout_s),
            llm_max_retries=env.integer("AGENT_EXECUTOR_LLM_MAX_RETRIES", cls.llm_max_retries),
            llm_backoff_s=env.number("AGENT_EXECUTOR_LLM_BACKOFF_S", cls.llm_backoff_s),
        )
        if settings.concurrency < 1:
            raise ConfigError("AGENT_EXECUTOR_CONCURRENCY must be at least 1")
        return settings


T = TypeVar("T", int, float)


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, default: str) -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def required(self, name: str) -> str:
        value = self._environ.get(name, "").strip()
        if not value:
            raise ConfigError(f"required environment variable {name} is not set")
        return value

    def integer(self, name: str, default: int) -> int:
        return self._parsed(name, default, int, "an integer")

    def number(self, name: str, default: float) -> float:
        return self._parsed(name, default, float, "a number")

    def _parsed(self, name: str, default: T, convert: Callable[[str], T], what: str) -> T:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return convert(raw)
        except ValueError:
            raise ConfigError(
                f"environment variable {name} must be {what}, got {raw!r}"
            ) from None

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")
