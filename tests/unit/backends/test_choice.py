"""How `--backend` is decided, with the engine's answers given (the decision logic, not Docker: the calls
to the engine and the registry check are replaced by their answers)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from testbed.backends import choice, docker_api
from testbed.core.errors import ExitCode, TestbedError

IMAGES = {"postgres": "postgres:15", "nats": "nats:2.10"}


@dataclass
class Engine:
    """What the engine and the registries answer; tests change it. `asked`: the registry checks made."""

    version: str | None = "27.3.1"
    present: set[str] = field(default_factory=lambda: set(IMAGES.values()))
    registry_down: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def registry(self, image: str, timeout: float = 3.0) -> str | None:
        self.asked.append(image)
        return "registry r.example does not answer (Connection refused)" if image in self.registry_down else None


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    answers = Engine()
    monkeypatch.setattr(docker_api, "engine_answers", lambda timeout=3.0: answers.version)
    monkeypatch.setattr(docker_api, "image_present", lambda image: image in answers.present)
    monkeypatch.setattr(choice, "_registry_answers", answers.registry)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/test-engine.sock")
    return answers


def test_native_asked_for_never_asks_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine_call(timeout: float = 3.0) -> str:
        raise AssertionError("native was asked for: the engine must not be asked")

    monkeypatch.setattr(docker_api, "engine_answers", no_engine_call)
    assert choice.choose_backend("native", IMAGES, pull=False) == ("native", "asked for")


def test_auto_with_every_image_here_picks_docker_without_a_registry_check(engine: Engine) -> None:
    assert choice.choose_backend("auto", IMAGES, pull=False) == (
        "docker", "engine 27.3.1 answers and every image is at hand")
    assert choice.choose_backend("docker", IMAGES, pull=False) == ("docker", "asked for (engine 27.3.1)")
    assert engine.asked == []


def test_auto_without_an_engine_picks_native_and_docker_is_an_error_naming_the_socket(engine: Engine) -> None:
    engine.version = None
    assert choice.choose_backend("auto", IMAGES, pull=False) == ("native", "no Docker engine answers")
    with pytest.raises(TestbedError) as caught:
        choice.choose_backend("docker", IMAGES, pull=False)
    assert caught.value.exit_code == ExitCode.PROVISIONING
    assert str(caught.value) == ("backend docker: no Docker engine answers on /run/test-engine.sock; start it or "
                                 "use --backend native")


def test_a_missing_image_whose_registry_answers_will_be_pulled(engine: Engine) -> None:
    engine.present = {"postgres:15"}
    assert choice.choose_backend("auto", IMAGES, pull=False) == (
        "docker", "engine 27.3.1 answers and every image is at hand; nats:2.10 will be pulled")
    assert engine.asked == ["nats:2.10"]


def test_a_missing_image_whose_registry_is_down_means_native_or_an_error(engine: Engine) -> None:
    engine.present = {"postgres:15"}
    engine.registry_down = {"nats:2.10"}
    assert choice.choose_backend("auto", IMAGES, pull=False) == (
        "native", "image nats:2.10 is not here and registry r.example does not answer (Connection refused)")
    with pytest.raises(TestbedError) as caught:
        choice.choose_backend("docker", IMAGES, pull=False)
    assert caught.value.exit_code == ExitCode.PROVISIONING
    assert str(caught.value) == (
        "image nats:2.10 cannot be pulled: registry r.example does not answer (Connection refused); use --backend "
        "native, or point settings.nats.image (or --image nats=IMAGE) at an image you have")


def test_pull_checks_every_registry_even_for_images_here(engine: Engine) -> None:
    backend, reason = choice.choose_backend("auto", IMAGES, pull=True)
    assert backend == "docker" and reason.endswith("; postgres:15, nats:2.10 will be pulled"), reason
    assert engine.asked == ["postgres:15", "nats:2.10"]
