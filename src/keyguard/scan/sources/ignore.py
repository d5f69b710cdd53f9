"""A small .gitignore matcher for directories that are not inside a git work tree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_gitignore(text: str) -> list[_Pattern]:
    """Compile the lines of a .gitignore file (relative to its own directory)."""
    patterns: list[_Pattern] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = ("^" if anchored else "^(?:.*/)?") + body + "$"
        patterns.append(_Pattern(re.compile(regex), negate, dir_only))
    return patterns


class IgnoreMatcher:
    """Stack of .gitignore files from a root down; ``ignored(rel, is_dir)`` answers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_dir: dict[str, list[_Pattern]] = {}

    def load_dir(self, rel_dir: str) -> None:
        """Read ``rel_dir/.gitignore`` if present."""
        path = self.root / rel_dir / ".gitignore"
        try:
            self._by_dir[rel_dir] = parse_gitignore(path.read_text("utf-8", "replace"))
        except OSError:
            self._by_dir[rel_dir] = []

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` (POSIX, relative to the root) is ignored; last match wins."""
        result = False
        parts = rel.split("/")
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            patterns = self._by_dir.get(base)
            if not patterns:
                continue
            sub = "/".join(parts[depth:])
            for pattern in patterns:
                if pattern.dir_only and not is_dir:
                    continue
                if pattern.regex.match(sub):
                    result = not pattern.negate
        return result
