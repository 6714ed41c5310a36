"""Secrets shaped like the ones suites get (a cloud service-account key as JSON, a YAML document, a PEM key), each
with the random parts of which no output may show any 8 characters, and the structure it shares with ordinary
text (key names, words, URLs, PEM armour), which redaction must leave alone."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Shaped:
    value: str
    random: tuple[str, ...]  # the parts that are secret: a key's body lines, a key id, a password

    def fragments(self) -> list[str]:
        """8-character runs of each random part (every 4th, and the last): none may show anywhere."""
        return [part[i : i + 8] for part in self.random for i in [*range(0, len(part) - 7, 4), len(part) - 8]]


def _key_lines(size: int = 600) -> list[str]:
    body = base64.b64encode(secrets.token_bytes(size)).decode()
    return [body[i : i + 64] for i in range(0, len(body), 64)]


def _password() -> str:
    return "tbP4ss-" + secrets.token_urlsafe(18)  # mixed case and digits whatever token_urlsafe gives


def pem() -> Shaped:
    lines = _key_lines()
    return Shaped("\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----", ""]), tuple(lines))


def service_account_json() -> Shaped:
    """A Google Cloud service-account key file, as `gcloud iam service-accounts keys create` writes it."""
    lines = _key_lines()
    key_id = secrets.token_hex(20)
    key = {
        "type": "service_account",
        "project_id": "tb-proj-1234",
        "private_key_id": key_id,
        "private_key": "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----", ""]),
        "client_email": "testbed@tb-proj-1234.iam.gserviceaccount.com",
        "client_id": "113452342354234523452",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/testbed%40tb-proj-1234.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    }
    return Shaped(json.dumps(key, indent=2) + "\n", (key_id, *lines))


def yaml_document() -> Shaped:
    password, token, lines = _password(), secrets.token_hex(16), _key_lines(120)
    key = "\n".join(f"    {line}" for line in lines)
    text = (
        "# deploy credentials\n"
        "type: service_account\n"
        "database:\n"
        "  host: db.internal.example.com\n"
        "  user: app_user\n"
        f'  password: "{password}"\n'
        "api:\n"
        "  url: https://api.example.com/v1\n"
        f"  token: \"{token}\"\n"
        "tls:\n"
        "  key: |\n"
        "    -----BEGIN EC PRIVATE KEY-----\n"
        f"{key}\n"
        "    -----END EC PRIVATE KEY-----\n"
    )
    return Shaped(text, (password, token, *lines))


def token_value() -> tuple[str, str]:
    """A value with every character XML, JSON and repr escape, around a random core no output may show."""
    core = secrets.token_hex(12)
    return f"tb-leak-<&>\"'\\-{core}", core


def pem_value() -> tuple[str, str]:
    """A multi-line value, key-shaped, around a random core."""
    core = secrets.token_hex(16)
    return f"-----BEGIN TESTBED KEY-----\nMIIBOgIBAAJBAK{core}\n-----END TESTBED KEY-----", core


def fragments(core: str) -> list[str]:
    """Every 8-character run of the random core: a truncated repr must not show even part of it."""
    return [core[i : i + 8] for i in range(0, len(core) - 7, 4)]
