"""Keyword prefilter: find every (keyword, end offset) in a buffer, caseless.

Hyperscan when it imports (x86_64), else pyahocorasick. Only rules whose keyword
occurs are then run with Python ``re``, and only on the lines around the hits.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
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


def cache_dir() -> Path:
    """keyguard's per-user cache folder (``$XDG_CACHE_HOME/keyguard``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keyguard"


class HyperscanMatcher:
    """Matcher on a Hyperscan block-mode database: caseless literals and prefilter regexes.

    Compiling the catalog's database costs ~0.1 s, most of a small scan's start-up: the
    compiled database is kept in the cache folder, keyed by the patterns and the Hyperscan
    version, and reused (Hyperscan checks a loaded database's integrity itself)."""

    def __init__(self, patterns: list[Pattern], *, cache: bool = True) -> None:
        import hyperscan

        self._hs: Any = hyperscan
        exprs = [(p if is_regex else re.escape(p)).encode() for p, is_regex in patterns]
        flags = [0 if is_regex else hyperscan.HS_FLAG_CASELESS for _, is_regex in patterns]
        path = _db_path(hyperscan, exprs, flags) if cache else None
        db = _load_db(hyperscan, path) if path is not None else None
        if db is None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
            if path is not None:
                _save_db(hyperscan, db, path)
        self._db: Any = db

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """All occurrences of every keyword in ``data``."""
        out: list[tuple[int, int]] = []
        if data:
            self._db.scan(data, match_event_handler=_collect, context=out)
        return out


def _collect(kid: int, start: int, end: int, flags: int, out: list[tuple[int, int]]) -> None:
    """Hyperscan's match handler: one function for every scan (its list is the context)."""
    del start, flags
    out.append((kid, end))


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


def _db_path(hs: Any, exprs: list[bytes], flags: list[int]) -> Path:
    digest = hashlib.sha256(f"{getattr(hs, '__version__', '?')}\0{len(exprs)}\0".encode())
    for expr, flag in zip(exprs, flags, strict=True):
        digest.update(expr + b"\0" + str(flag).encode() + b"\0")
    return cache_dir() / f"hs-{digest.hexdigest()[:32]}.db"


def _load_db(hs: Any, path: Path) -> Any:
    try:
        blob = path.read_bytes()
        db = hs.loadb(blob, hs.HS_MODE_BLOCK)
        db.scratch = hs.Scratch(db)
    except (OSError, hs.error):
        return None
    return db


def _save_db(hs: Any, db: Any, path: Path) -> None:
    """Write atomically (a concurrent scan reads the old file or the new one, never half)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hs-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(hs.dumpb(db))
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only home: compile on every start instead


def make_matcher(patterns: list[Pattern], *, use_hyperscan: bool) -> KeywordMatcher:
    """Hyperscan when asked (patterns may hold regexes), else Aho-Corasick (literals)."""
    if use_hyperscan:
        return HyperscanMatcher(patterns)
    return AhoCorasickMatcher(patterns)
