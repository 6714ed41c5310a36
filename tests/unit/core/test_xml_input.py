"""XML testbed did not write: parsed with the standard library, a document type declaration refused before any
entity is declared."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from testbed.core.xml_input import parse_xml


def test_a_report_without_a_dtd_parses() -> None:
    root = parse_xml(b'<testsuites><testsuite name="s" tests="1"><testcase name="t"/></testsuite></testsuites>')
    assert root.tag == "testsuites" and root[0].get("tests") == "1" and root[0][0].get("name") == "t"


@pytest.mark.parametrize("doctype", [
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>',  # an entity bomb's start
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',  # an external entity
    b"<!DOCTYPE r>",
])
def test_any_document_type_declaration_is_refused(doctype: bytes) -> None:
    with pytest.raises(ET.ParseError, match="has a document type declaration"):
        parse_xml(doctype + b"<r>&b;</r>")


def test_comments_are_kept_only_when_asked() -> None:
    data = b"<r><!-- a note --><c/><?pi x?></r>"
    assert [child.tag for child in parse_xml(data)] == ["c"]
    kept = parse_xml(data, comments=True)
    assert [child.tag for child in kept] == [ET.Comment, "c", ET.ProcessingInstruction]
    assert kept[0].text == " a note "
