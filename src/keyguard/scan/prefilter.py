"""Keyword prefilter: find every (keyword, end offset) in a buffer, caseless.

Hyperscan when it imports (x86_64), else pyahocorasick. Only rules whose keyword
occurs are then run with Python ``re``, and only on the lines around the hits.
"""

from __future__ import annotations

import re
from typing import Any, Protocol


class KeywordMatcher(Protocol):
    """Finds keyword occurrences; returns ``(keyword index, end offset)`` pairs."""

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """All occurrences of every keyword in ``data``."""
        ...


class HyperscanMatcher:
    """Keyword matcher on a Hyperscan block-mode database."""

    def __init__(self, keywords: list[str]) -> None:
        import hyperscan

        self._hs: Any = hyperscan
        self._db: Any = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        exprs = [re.escape(k).encode() for k in keywords]
        self._db.compile(
            expressions=exprs,
            ids=list(range(len(keywords))),
            elements=len(exprs),
            flags=[hyperscan.HS_FLAG_CASELESS] * len(exprs),
        )

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """All occurrences of every keyword in ``data``."""
        out: list[tuple[int, int]] = []
        append = out.append

        def on_match(kid: int, start: int, end: int, flags: int, ctx: object) -> None:
            del start, flags, ctx
            append((kid, end))

        if data:
            self._db.scan(data, match_event_handler=on_match)
        return out


class AhoCorasickMatcher:
    """Keyword matcher on pyahocorasick over the lower-cased buffer."""

    def __init__(self, keywords: list[str]) -> None:
        import ahocorasick

        self._automaton: Any = ahocorasick.Automaton()
        for index, keyword in enumerate(keywords):
            self._automaton.add_word(keyword.lower(), index)
        self._automaton.make_automaton()

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """All occurrences of every keyword in ``data``."""
        text = data.lower().decode("latin-1")
        return [(kid, end + 1) for end, kid in self._automaton.iter(text)]


def make_matcher(keywords: list[str], *, prefer: str = "auto") -> KeywordMatcher:
    """Hyperscan if available (or forced), else Aho-Corasick."""
    if prefer in ("auto", "hyperscan"):
        try:
            return HyperscanMatcher(keywords)
        except ImportError:
            if prefer == "hyperscan":
                raise
    return AhoCorasickMatcher(keywords)
