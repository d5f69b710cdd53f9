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


Pattern = tuple[str, bool]  # (keyword or regular expression, is_regex)


def hyperscan_available() -> bool:
    """Whether the hyperscan module imports on this machine."""
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


class HyperscanMatcher:
    """Matcher on a Hyperscan block-mode database: caseless literals and prefilter regexes."""

    def __init__(self, patterns: list[Pattern]) -> None:
        import hyperscan

        self._hs: Any = hyperscan
        self._db: Any = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        exprs = [(p if is_regex else re.escape(p)).encode() for p, is_regex in patterns]
        flags = [0 if is_regex else hyperscan.HS_FLAG_CASELESS for _, is_regex in patterns]
        self._db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)

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

    def __init__(self, patterns: list[Pattern]) -> None:
        import ahocorasick

        self._automaton: Any = ahocorasick.Automaton()
        ids: dict[str, list[int]] = {}
        for index, (keyword, is_regex) in enumerate(patterns):
            if is_regex:
                raise ValueError("Aho-Corasick takes literal keywords only")
            ids.setdefault(keyword.lower(), []).append(index)
        for word, indexes in ids.items():
            self._automaton.add_word(word, tuple(indexes))
        self._automaton.make_automaton()

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """All occurrences of every keyword in ``data``."""
        text = data.lower().decode("latin-1")
        return [(kid, end + 1) for end, kids in self._automaton.iter(text) for kid in kids]


def make_matcher(patterns: list[Pattern], *, use_hyperscan: bool) -> KeywordMatcher:
    """Hyperscan when asked (patterns may hold regexes), else Aho-Corasick (literals)."""
    if use_hyperscan:
        return HyperscanMatcher(patterns)
    return AhoCorasickMatcher(patterns)
