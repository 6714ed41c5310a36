"""XML that testbed did not write itself (pytest's JUnit report, a shard's): parsed with the standard library,
with any document type declaration refused before an entity is declared (entity bombs, external entities)."""

from __future__ import annotations

import xml.etree.ElementTree as ET


class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str, system: str) -> None:
        raise ET.ParseError(
            "has a document type declaration (a DTD: entity bombs, external entities), which pytest never writes"
        )


def parse_xml(data: bytes, *, comments: bool = False) -> ET.Element:
    """An XML document testbed did not write itself (pytest's, a shard's): one with a DTD is refused before
    any entity is declared; with `comments`, comments and processing instructions are kept in the tree."""
    parser = ET.XMLParser(target=_NoDoctype(insert_comments=comments, insert_pis=comments))  # noqa: S314 - no DTD
    parser.feed(data)
    root: ET.Element = parser.close()
    return root
