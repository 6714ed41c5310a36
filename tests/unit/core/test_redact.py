"""Issue 23: structured secrets (JSON, YAML, PEM) are redacted without mangling what shares their syntax, the
files of a run folder stay valid JSON and XML after scrubbing, and percent-encoded and Python-escaped forms of a
value are caught whole; in-process (test_leaks runs the same through real runs)."""

from __future__ import annotations

import html
import io
import json
import secrets
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _pytest._io.saferepr import saferepr
from _pytest.compat import ascii_escaped

from support.secret_shapes import Shaped, fragments, pem, pem_value, service_account_json, token_value, yaml_document
from testbed.core import junit, redact, xml_input

SHAPES = {"json": service_account_json, "yaml": yaml_document, "pem": pem}

# What testbed's own output has in common with the shapes above: syntax, key names, words, URL prefixes, PEM
# armour, whole key/value lines that hold nothing random. None of it may change.
ORDINARY = [
    "see https://coverage.readthedocs.io/en/7.6.1/messages.html#warning-no-data-collected",
    '{"type": "service_account", "project_id": "another-project", "duration": 0.607}',
    '  "duration": 0.607,',
    '"auth_uri": "https://accounts.google.com/o/oauth2/auth",',
    "client_x509_cert_url private_key_id universe_domain googleapis.com",
    "-----BEGIN PUBLIC KEY-----",
    "-----END EC PRIVATE KEY-----",
    "type: service_account",
    "  user: app_user",
    "  key: |",
    "tests/test_leaks.py::test_multi_line_value FAILED",
    "2026-12-07 06:23:50.123 UTC [4242] LOG:  database system is ready to accept connections",
]


def _shown(redactor: redact.Redactor, shaped: Shaped, text: str) -> list[str]:
    cleaned = redactor.text(text)
    return [fragment for fragment in shaped.fragments() if fragment in cleaned]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_fragments_come_from_the_random_parts_only(shape: str) -> None:
    shaped = SHAPES[shape]()
    redactor = redact.Redactor([shaped.value])
    # Both directions. Ordinary text sharing the secret's syntax is left alone...
    for line in ORDINARY:
        assert redactor.text(line) == line
    # ...and whatever pytest shows of the secret never holds 8 characters of a random part: its shortened
    # repr (head...tail), the repr of a dict holding it, and any head or tail of it (a diff skips what the two
    # sides have in common).
    value = shaped.value
    assert _shown(redactor, shaped, saferepr(value)) == []
    assert _shown(redactor, shaped, saferepr({"api_key": value, "other": "x" * 50})) == []
    for cut in range(0, len(value), 5):
        for text in (value[cut:], value[:cut], repr(value)[cut:], json.dumps(value)[:cut]):
            assert _shown(redactor, shaped, text) == [], (cut, text)
    # The value itself, each of its random parts alone, and each line holding one, are masked whole.
    assert redactor.text(f"> {value.strip()} <") == "> *** <"
    for part in shaped.random:
        assert redactor.text(f"[{part}]") == "[***]"


def test_a_url_with_credentials_masks_them_not_the_url() -> None:
    password, team, key = f"Xk9{secrets.token_hex(6)}Qz", f"T0{secrets.token_hex(4).upper()}", secrets.token_hex(12)
    dsn = f"postgres://app:{password}@db.internal:5432/app"
    webhook = f"https://hooks.slack.com/services/{team}/B0A1B2C3D4/{key}"
    letters = "QXkvPwmrTvbnLqwdRzfh"  # random letters only, in humps like camelCase's
    redactor = redact.Redactor([dsn, webhook, f"{{'name': 'ci', 'password': '{letters}', 'token': '{key}'}}"])
    for line in (
        "could not connect to db.internal:5432 as app: internal error",
        "POST https://hooks.slack.com/services/ returned 404",
        "postgres://app@db.internal:5432/app",
    ):
        assert redactor.text(line) == line
    # What pytest shows of them, cut anywhere, never holds 8 characters of a credential.
    for value in (dsn, webhook, letters):
        for cut in range(len(value)):
            for text in (value[:cut], value[cut:]):
                cleaned = redactor.text(text)
                for secret in (password, team + "/B0A1B2C3D4/" + key, letters):
                    assert not any(secret[i : i + 8] in cleaned for i in range(len(secret) - 7)), cleaned


def test_a_multi_line_value_keeps_the_line_end_after_it() -> None:
    shaped = pem()
    redactor = redact.Redactor([shaped.value])
    assert redactor.text(f"before\n{shaped.value}---- next section ----\n") == "before\n***\n---- next section ----\n"


VALUES = {
    "non-ascii, backslash at the end": "p\xe4ssw\xf6rd-\xfcn-{core}\\",
    "url syntax and a space": "tb-{core}/+&=?% x\\",
    "non-ascii words only": "\xfcber-geheim-\u20ac-{core}",
}


@pytest.mark.parametrize("shape", list(VALUES))
def test_percent_encoded_and_python_escaped_forms_are_masked_whole(shape: str) -> None:
    core = secrets.token_hex(6)
    value = VALUES[shape].format(core=core)
    redactor = redact.Redactor([value])
    test_id = ascii_escaped(value)  # how pytest writes a parametrize id
    forms = [
        (urllib.parse.quote(value), "{}"),
        (urllib.parse.quote(value, safe=""), "{}"),
        (urllib.parse.quote_plus(value), "{}"),
        (urllib.parse.urlencode({"key": value}), "key={}"),
        (ascii(value), "'{}'"),
        (repr(value), "'{}'"),
        (value.encode("unicode_escape").decode(), "{}"),
        (json.dumps(value), '"{}"'),
        (json.dumps(value, ensure_ascii=False), '"{}"'),
        (f"test_x[{test_id}]", "test_x[{}]"),
        (json.dumps({f"t.py::test_x[{test_id}]": 1.5}), '{{"t.py::test_x[{}]": 1.5}}'),  # durations.json
        (repr(test_id), "'{}'"),
        (html.escape(test_id), "{}"),
        (repr(json.dumps(value)), "'\"{}\"'"),
    ]
    for form, expected in forms:
        # Nothing of the value is left beside the mask: not its last character, not an escape's head.
        assert redactor.text(f"<{form}>") == "<" + expected.format(redact.MASK) + ">", form


def _junit(value: str) -> bytes:
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="pytest", tests="2", failures="1", errors="0", time="0.2")
    ET.SubElement(suite, "testcase", classname="tests.test_a", name="test_ok", time="0.1")
    case = ET.SubElement(suite, "testcase", classname="tests.test_a", name=f"test_id[{ascii_escaped(value)}]")
    failure = ET.SubElement(case, "failure", message=f"assert {saferepr(value)} == 'x'")
    failure.text = f"tests/test_a.py:3: in test_id\n    assert {value!r} == 'x'"
    ET.SubElement(case, "system-out").text = f"printed: {value}\n"
    suites.insert(0, ET.Comment(f" written with {value[:40]} "))
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_json_and_xml_files_stay_valid_when_scrubbed(tmp_path: Path, shape: str) -> None:
    shaped = SHAPES[shape]()
    value = shaped.value
    redactor = redact.Redactor([value])
    folder = tmp_path / "run"
    (folder / "diagnostics").mkdir(parents=True)
    documents = {
        "state.json": {"run_id": "r-1", "booted": 1733563426.25, "env": {"TOKEN": value}, value: "as a key"},
        "report.json": {"duration": 0.607, "tests": {"failed": 1}, "failure": {"message": saferepr(value)}},
        "diagnostics/readiness.json": {"postgres": {"attempts": 2, "errors": [f"refused: {value}"]}},
        "durations.json": {"tests/test_a.py::test_ok": 0.1, f"tests/test_a.py::test_id[{ascii_escaped(value)}]": 0.2},
    }
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=2 if name != "durations.json" else None))
    (folder / "junit.xml").write_bytes(_junit(value))
    (folder / "pytest.log").write_text(f"E   assert {saferepr(value)} == 'x'\n{value}")
    (folder / "broken.json").write_text(f'{{"cut short": "{value}')  # a test's own, not JSON: scrubbed as text

    scrubbed = redactor.tree(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in scrubbed) == sorted(
        [*documents, "junit.xml", "pytest.log", "broken.json"]
    )
    files = [p for p in folder.rglob("*") if p.is_file()]
    hits = [f"{f} in {p}" for p in files for f in shaped.fragments() if f.encode() in p.read_bytes()]
    assert hits == []
    masked = redact.MASK + value[len(value.rstrip()) :]  # the line end after it stays
    state = json.loads((folder / "state.json").read_text())
    assert state == {"run_id": "r-1", "booted": 1733563426.25, "env": {"TOKEN": masked}, masked: "as a key"}
    report = json.loads((folder / "report.json").read_text())
    assert report["duration"] == 0.607 and report["tests"] == {"failed": 1}
    readiness = json.loads((folder / "diagnostics/readiness.json").read_text())
    assert readiness["postgres"]["errors"] == [f"refused: {masked}"]
    assert json.loads((folder / "durations.json").read_text()) == {
        "tests/test_a.py::test_ok": 0.1,
        "tests/test_a.py::test_id[***]": 0.2,
    }
    summary = junit.parse(folder / "junit.xml")
    assert summary is not None and summary.problem is None
    assert (summary.passed, summary.failed) == (1, 1)
    assert summary.failures[0].test == "tests.test_a::test_id[***]"
    # Scrubbed once, nothing is left to scrub.
    assert redactor.tree(folder) == []


def test_a_number_that_holds_a_value_is_masked_in_a_json_file(tmp_path: Path) -> None:
    redactor = redact.Redactor(["9137746612345"])  # digits only: a value with no random part, all of it counts
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"account": 9137746612345, "duration": 0.5, "ok": True}))
    assert redactor.file(path)
    assert json.loads(path.read_text()) == {"account": "***", "duration": 0.5, "ok": True}


def test_an_xml_file_with_a_dtd_is_never_expanded_and_scrubbed_as_text(tmp_path: Path) -> None:
    value = "tb-" + secrets.token_hex(12)
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<testsuite name="&b;" tests="1"><testcase name="t" classname="{value}"/></testsuite>'
    )
    with pytest.raises(ET.ParseError, match="document type declaration"):
        xml_input.parse_xml(laughs.encode())
    path = tmp_path / "junit.xml"
    path.write_text(laughs)
    assert redact.Redactor([value]).file(path)
    assert path.read_text() == laughs.replace(value, "***")
    summary = junit.parse(path)
    assert summary is not None and summary.problem is not None and "document type declaration" in summary.problem


VALUE = "s3cr3t-välue\nline-two-of-it"  # non-ASCII and a newline: every encoding differs


def test_redactor_with_no_values_changes_nothing(tmp_path: Path) -> None:
    empty = redact.Redactor([None, ""])
    assert not empty and empty.text("anything") == "anything"
    path = tmp_path / "f"
    path.write_text("anything")
    assert not empty.file(path)


def test_redactor_masks_non_ascii_json_and_xml_attribute_encodings() -> None:
    redactor = redact.Redactor([VALUE])
    forms = [
        json.dumps(VALUE),  # \u00e4 and \n escaped
        json.dumps(VALUE, ensure_ascii=False),
        repr(VALUE),
        VALUE.replace("\n", "&#10;"),  # ElementTree's newline inside an attribute
    ]
    for form in forms:
        masked = redactor.text(f"<x a={form}/>")
        assert "s3cr3t" not in masked and "two-of-it" not in masked, masked


def test_redactor_masks_keys_and_values_of_json_shaped_data() -> None:
    redactor = redact.Redactor(["tok-12345678"])
    data = {"tok-12345678": ["a tok-12345678 b", {"n": 1, "t": ("tok-12345678",)}], "ok": None}
    assert redactor.data(data) == {"***": ["a *** b", {"n": 1, "t": ["***"]}], "ok": None}


def test_redactor_scrubs_a_file_in_place_and_never_through_a_symlink(tmp_path: Path) -> None:
    redactor = redact.Redactor(["tok-12345678"])
    target = tmp_path / "target.log"
    target.write_text("x tok-12345678 y\n")
    link = tmp_path / "link.log"
    link.symlink_to(target)
    assert not redactor.file(link)
    assert "tok-12345678" in target.read_text()
    assert redactor.file(target)
    assert target.read_text() == "x *** y\n"
    assert not redactor.file(target)  # nothing left to scrub


def test_redactor_masks_every_encoding_and_fragment() -> None:
    value, core = token_value()
    redactor = redact.Redactor([value])
    for form in (value, repr(value), html.escape(repr(value)), html.escape(value), json.dumps(value)):
        text = redactor.text(f"before {form} after")
        assert core not in text and all(f not in text for f in fragments(core)), text
    # pytest's shortened repr shows head and tail: both are fragments of the value.
    shortened = f"assert '{value[:12]}...{value[-12:]}' == 'x'"
    assert core[-8:] not in redactor.text(shortened)
    assert redactor.text("ordinary output, port 5432") == "ordinary output, port 5432"


def test_redactor_masks_each_line_of_a_multi_line_value() -> None:
    pem, core = pem_value()
    redactor = redact.Redactor([pem])
    for line in pem.splitlines():
        assert redactor.text(f"> {line}\n") == "> ***\n"
    assert core not in redactor.text(repr(pem)) and core not in redactor.text(pem)


def test_stream_redactor_catches_a_value_split_at_any_chunk_boundary() -> None:
    value, core = token_value()
    redactor = redact.Redactor([value])
    data = (b"x" * 7 + value.encode() + b"\n") * 3
    for cut in range(1, len(data)):
        sink = io.BytesIO()
        stream = redactor.stream(sink)
        stream.write(data[:cut])
        stream.write(data[cut:])
        stream.close()
        assert core.encode() not in sink.getvalue() and sink.getvalue().count(b"***") == 3, cut


def test_tree_scrub_leaves_the_private_folder_alone(tmp_path: Path) -> None:
    """Teardown scrubs the run's folders (server logs included) but not the 0600 source it reads values from."""
    value, core = token_value()
    redactor = redact.Redactor([value])
    folder = tmp_path / "run"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "postgres.log").write_text(f"FATAL: password authentication failed: {value}\n")
    (folder / "private").mkdir()
    (folder / "private" / "secrets.json").write_text(f'{{"K": "{value}"}}')
    scrubbed = redactor.tree(folder, skip=("private",))
    assert scrubbed == [folder / "logs" / "postgres.log"]
    assert core not in (folder / "logs" / "postgres.log").read_text()
    assert core in (folder / "private" / "secrets.json").read_text()  # the 0600 source itself is not touched
