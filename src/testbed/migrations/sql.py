"""Splitting a migration file into statements the way ``psql`` does: ``;`` outside quotes, ``E''``
strings, quoted identifiers, dollar quotes, ``--`` and nested ``/* */`` comments, parentheses and
``CREATE FUNCTION ... BEGIN ATOMIC ... END`` bodies (assuming ``standard_conforming_strings = on``, the
default), each statement with its offset in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


# Lexical classes of PostgreSQL's scanner (src/backend/parser/scan.l).
_WHITESPACE = frozenset(" \t\n\r\f\v")


_IDENT_RE = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")


_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_.]*")


_DOLLAR_TAG_RE = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")


_TX_CONTROL = frozenset({"begin", "start", "commit", "end", "rollback", "abort"})


@dataclass(frozen=True)
class Statement:
    """One statement of a file: ``text[start:end]`` is sent; ``first`` is the offset of its first token."""

    start: int
    end: int
    first: int
    words: tuple[str, ...]


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    """``i`` is just past an opening quote; return the offset just past the closing one (or the end)."""
    n = len(text)
    while i < n:
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _skip_block_comment(text: str, i: int) -> int:
    """``i`` is at ``/*``; return the offset past the matching ``*/`` (comments nest), or the end."""
    depth = 0
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_line_comment(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] not in "\r\n":
        i += 1
    return i


class _Splitter:
    """psql's statement splitting (src/fe_utils/psqlscan.l), reduced to what decides where ``;`` ends one."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.statements: list[Statement] = []
        self._reset(0)

    def _reset(self, start: int) -> None:
        self.start = start
        self.first = -1
        self.words: list[str] = []
        self.paren_depth = 0
        self.begin_depth = 0

    def _word(self, word: str) -> None:
        word = word.lower()
        self.words.append(word)
        lead = self.words[:4]
        if lead[1:3] == ["or", "replace"]:
            del lead[1:3]
        defines_routine = lead[:1] == ["create"] and lead[1:2] in (["function"], ["procedure"])
        if not defines_routine or self.paren_depth:
            return
        if word == "begin" or (word == "case" and self.begin_depth):
            self.begin_depth += 1
        elif word == "end" and self.begin_depth:
            self.begin_depth -= 1

    def _end(self, end: int) -> None:
        if self.first >= 0:
            self.statements.append(Statement(self.start, end, self.first, tuple(self.words[:2])))
        self._reset(end)

    def split(self) -> list[Statement]:
        text = self.text
        n = len(text)
        i = 0
        while i < n:
            ch = text[i]
            if ch in _WHITESPACE:
                i += 1
                continue
            if text.startswith("--", i):
                i = _skip_line_comment(text, i)
                continue
            if text.startswith("/*", i):
                i = _skip_block_comment(text, i)
                continue
            if self.first < 0 and ch != ";":  # a lone ';' is an empty statement, not content
                self.first = i
            i = self._token(i)
        self._end(n)
        return self.statements

    def _token(self, i: int) -> int:
        """Consume the token at ``i`` (not whitespace or a comment); return the offset after it."""
        text = self.text
        ch = text[i]
        if ch in "'\"":
            return _skip_quoted(text, i + 1, ch, backslash=False)
        tag = _DOLLAR_TAG_RE.match(text, i)
        if tag is not None:
            close = text.find(tag.group(), tag.end())
            return len(text) if close < 0 else close + len(tag.group())
        ident = _IDENT_RE.match(text, i)
        if ident is not None:
            end = ident.end()
            if ident.group() in ("e", "E") and text.startswith("'", end):
                return _skip_quoted(text, end + 1, "'", backslash=True)
            self._word(ident.group())
            return end
        number = _NUMBER_RE.match(text, i)
        if number is not None:
            return number.end()
        self._punctuation(ch, i)
        return i + 1

    def _punctuation(self, ch: str, i: int) -> None:
        if ch == "(":
            self.paren_depth += 1
        elif ch == ")":
            self.paren_depth = max(0, self.paren_depth - 1)
        elif ch == ";" and not self.paren_depth and not self.begin_depth:
            self._end(i + 1)


def split_statements(text: str) -> list[Statement]:
    """Split SQL text into statements; comment-only/empty pieces are dropped."""
    return _Splitter(text).split()


def line_of(text: str, offset: int) -> int:
    offset = max(0, min(offset, len(text)))
    return text.count("\n", 0, offset) + 1


def is_transaction_control(words: Iterable[str]) -> bool:
    first, *rest = [*words, "", ""]
    if first == "prepare":
        return rest[0] == "transaction"
    if first == "rollback" and rest[0] == "to":
        return False  # ROLLBACK TO SAVEPOINT stays inside the transaction
    return first in _TX_CONTROL
