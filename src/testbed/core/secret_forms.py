"""How a secret value can appear in what a run writes or prints.

Whole values. A value is masked as a whole and line by line (a multi-line key printed one line at a time), in
each form it can take on its way out: raw text and UTF-8 bytes; Python's and JSON's escaping (`repr()` and
`ascii()` in pytest's assertion messages, unicode-escape in a parametrize id, JSON strings with and without
ensure_ascii), also twice (an id inside a repr or a JSON file); percent-encoding (`quote`, `quote_plus`: a
URL's query string); each of those XML/HTML-escaped on top (htmlcov, stdout). Values shorter than
MIN_SECRET_LENGTH are refused where secrets are resolved: replacing a short string corrupts ordinary output
(words, numbers, ports) and where the masks land then tells the value anyway.

Fragments. pytest shortens a long repr to its head and tail (`'sk-proj-Ab...9xQz'`) and skips the identical
part of two long strings it compares, so runs of MIN_SECRET_LENGTH characters of a value are masked too; but
only of its random parts. A structured secret (a cloud service-account key, a YAML document, a PEM key) shares
key names, punctuation, words, numbers and URL prefixes (`"type": "`, `https://`, `-----BEGIN`) with ordinary
text, and masking those would mangle testbed's own output (`see ***coverage.readthedocs.io`). So:
- a JSON or YAML document (an object or a list) is decoded and its keys and scalar values are read, never
  its syntax; any other value is read as it is;
- the text is split at whitespace into words, and each word at the punctuation of JSON, YAML, XML, URLs,
  e-mail addresses and escapes (SEPARATORS; in a word holding `://` also `/` and `.`, so that a URL's host
  and path segments are apart) into tokens. A token is plain when each of its pieces between JOINERS (and
  %-escapes) is a word or a number: lowercase or UPPERCASE letters, or Capitalised and camelCase humps that
  each hold a vowel, followed by at most 3 digits (`service_account`, `accounts.google.com`, `-----BEGIN`,
  `privateKeyId`, `x509`, `oauth2`), digits alone (ports, ids, timestamps) or a date-time's `07T06`. Any
  other token is random: digits amid letters, a hump without a vowel (`VgxBipUgka`), a symbol (`$`, `!`,
  `*`). A separator glued between two random tokens is random too, so a password's punctuation does not
  cut it up (`aB3$dE6&gH9(jK2`), while a URL's credentials are apart from its host
  (`postgres://app:***@db.internal/app`);
- each run of random characters is a fragment source: its every MIN_SECRET_LENGTH-character window, in
  every form above, is masked wherever it shows. Nothing else of the value is a fragment.
A value with no random part at all (a passphrase of words, a number) is all secret: the windows of its
lines count, as do the windows of a document's values (never its keys). The whole pieces of a JSON or YAML
document are the document, its scalar values that hold a random run, and each line (of the document or of
such a value) that holds one; lines of key/value structure alone are not pieces. Any other value's every line
is a piece. A mask never swallows the line end after a value's last line.

Files. What testbed writes in a run folder as JSON or XML (state.json, report.json, readiness.json,
durations.json, junit.xml, coverage.xml) is redacted structurally (testbed.core.redact): parsed (XML through
xml_input.parse_xml, which refuses a DTD), every string redacted (keys and attribute values too, where they hold
a value), and written back, so the file stays valid; the serialised result is then scanned as text once more,
for a value spread over its syntax. Any other file, and a .json or .xml file that does not parse, is redacted
as text."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from typing import Any

MIN_SECRET_LENGTH = 8


SEPARATORS = frozenset("\"'`,:;=&?{}[]()<>#|\\@")


URL_SEPARATORS = SEPARATORS | frozenset("/.")  # in a word holding "://": a URL's path and host are words apart


JOINERS = frozenset("-_./+~")


_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


_DATE_TIME_PIECE = re.compile(r"\d{1,4}[TZ]\d{0,4}")  # 2024-12-07T06:17:00Z


_VOWELS = frozenset("aeiouy")


_MAX_DOCUMENT_STRINGS = 10_000  # a YAML document's aliases can name one list many times over


def too_short(value: str) -> bool:
    """A value that cannot be redacted safely (see the module's docstring)."""
    return len(value.strip()) < MIN_SECRET_LENGTH


def _plain_piece(piece: str) -> bool:
    """A word or a number: `service`, `BEGIN`, `Key`, `privateKeyId`, `x509`, `443`, a date-time's `07T06`."""
    letters = piece.rstrip("0123456789")
    digits = len(piece) - len(letters)
    if not letters or _DATE_TIME_PIECE.fullmatch(piece):
        return True
    if digits > 3 or not letters.isalpha():
        return False
    if letters.islower() or letters.isupper():
        return True
    humps = [letters[0]]  # camelCase: a hump starts at each uppercase letter
    for char in letters[1:]:
        if char.isupper():
            humps.append(char)
        else:
            humps[-1] += char
    # Each a word: lowercase after its first letter, two letters or more but the first, a vowel in it
    # (random letters often make mixed-case humps too: `VgxBipUgka`).
    return all(
        hump[1:].islower() and (len(hump) > 1 or n == 0) and any(char in _VOWELS for char in hump.lower())
        for n, hump in enumerate(humps)
    )


def _plain_token(token: str) -> bool:
    """A token whose pieces between JOINERS (and a URL's %-escapes) are all plain; a symbol makes it
    high-entropy."""
    piece = ""
    for char in _PERCENT_ESCAPE.sub("-", token) + "-":
        if char in JOINERS:
            if piece and not _plain_piece(piece):
                return False
            piece = ""
        elif char.isalnum():
            piece += char
        else:
            return False
    return True


def _high_runs(text: str) -> list[str]:
    """The runs of high-entropy characters in a text (see the module's docstring)."""
    runs: list[str] = []
    for word in text.split():
        separators = URL_SEPARATORS if "://" in word else SEPARATORS
        # Alternating tokens and separator groups, starting and ending with a token (maybe empty).
        parts: list[str] = [""]
        for char in word:
            if (char in separators) != (len(parts) % 2 == 0):
                parts.append("")
            parts[-1] += char
        if len(parts) % 2 == 0:
            parts.append("")
        high = [bool(part) and not _plain_token(part) if n % 2 == 0 else False for n, part in enumerate(parts)]
        for n in range(1, len(parts), 2):
            high[n] = high[n - 1] and high[n + 1]  # glued between two high-entropy tokens: part of them
        run = ""
        for part, is_high in zip(parts, high, strict=True):
            if is_high:
                run += part
            elif run:
                runs.append(run)
                run = ""
        if run:
            runs.append(run)
    return runs


def _document(value: str) -> tuple[list[str], list[str]] | None:
    """The keys and the scalar values of a JSON or YAML document (an object or a list), as text; None for
    any other value."""
    stripped = value.strip()
    document: Any = None
    if stripped[:1] in ("{", "["):
        try:
            document = json.loads(stripped)
        except (ValueError, RecursionError):
            document = None
    if document is None and "\n" in stripped:
        import yaml  # noqa: PLC0415 - only for a multi-line value that is not JSON

        try:
            document = yaml.safe_load(stripped)
        except (yaml.YAMLError, ValueError, RecursionError):
            return None
    if not isinstance(document, dict | list) or not document:
        return None
    keys: list[str] = []
    scalars: list[str] = []
    seen: set[int] = set()
    pending: list[Any] = [document]
    while pending and len(keys) + len(scalars) < _MAX_DOCUMENT_STRINGS:
        item = pending.pop()
        if isinstance(item, dict | list):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                keys += [str(k) for k in item]
                pending += list(item.values())
            else:
                pending += item
        elif item is not None and not isinstance(item, bool):
            scalars.append(str(item))
    return keys, scalars


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def secret_parts(value: str) -> tuple[set[str], set[str]]:
    """What of one value is masked: pieces, wherever they show whole, and fragment sources, whose windows are
    masked wherever they show."""
    pieces = {value.strip()}
    document = _document(value)
    if document is None:
        pieces |= set(_lines(value))
        sources = set(_high_runs(value)) or set(_lines(value))
    else:
        keys, scalars = document
        sources = {run for text in keys + scalars for run in _high_runs(text)}
        if sources:
            holding = [text for text in (*_lines(value), *scalars) if _high_runs(text)]
            pieces |= {*holding, *(line for text in holding for line in _lines(text) if _high_runs(line))}
        else:  # no random part: the values are the secret (never the keys)
            pieces |= {*_lines(value), *scalars}
            sources = {line for text in scalars for line in _lines(text)}
    pieces.add(value)  # as it is, surrounding whitespace included, for its escaped forms (a repr's trailing \n)
    return {p for p in pieces if len(p.strip()) >= MIN_SECRET_LENGTH}, {
        s for s in sources if len(s) >= MIN_SECRET_LENGTH
    }


def _python_forms(text: str) -> set[str]:
    """Escaped once: repr() and ascii() (with and without `'` escaped: the repr of something that holds a `"`
    escapes it), unicode-escape (pytest's parametrize ids), JSON (ensure_ascii or not)."""
    quoted = repr(text + "'\"")[1:-4]  # `'` quoting, `'` escaped (the `\'"` added is cut off again)
    quoted_ascii = ascii(text + "'\"")[1:-4]
    return {
        text,
        quoted,
        quoted.replace("\\'", "'"),
        quoted_ascii,
        quoted_ascii.replace("\\'", "'"),
        text.encode("unicode_escape").decode("ascii"),
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def _markup_forms(text: str) -> set[str]:
    """As itself, or XML/HTML-escaped (junit.xml holds pytest's repr in an attribute)."""
    escaped = html.escape(text, quote=True)
    return {
        text,
        html.escape(text, quote=False),
        escaped,
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"),
        # ElementTree writes a newline inside an attribute as &#10;.
        escaped.replace("\n", "&#10;").replace("\r", "&#13;"),
    }


def forms(part: str) -> set[str]:
    """Every way a piece or fragment source can be written (see the module's docstring)."""
    encoded = {part, urllib.parse.quote(part, safe=""), urllib.parse.quote(part), urllib.parse.quote_plus(part)}
    escaped = {twice for plain in encoded for once in _python_forms(plain) for twice in _python_forms(once)}
    return {form for text in escaped for form in _markup_forms(text) if form}
