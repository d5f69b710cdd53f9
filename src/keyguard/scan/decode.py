"""Base64 layers worth opening: Kubernetes Secret ``data:`` values, basic-auth headers,
and values next to the word base64. Each decoded value is re-scanned in its line's
context (``password: <decoded>``) by the engine, to a depth limit.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from keyguard.scan.names import secret_name

# (kind, caseless keyword for Aho-Corasick, regex for Hyperscan)
DECODERS: tuple[tuple[str, str, str], ...] = (
    ("k8s", "kind: secret", r"(?i:kind)[\x22']?:\s*[\x22']?(?i:secret)\b"),
    ("basic", "basic ", r"(?i:basic)\s+[A-Za-z0-9+/]{12}"),
    ("base64", "base64", r"(?i:base64)[^\n]{0,80}[A-Za-z0-9+/_-]{20}"),
    ("docker", ".dockerconfigjson", r"\.dockerconfigjson"),
)

_YAML_VALUE = re.compile(rb"^([ \t]+[\w.-]+:[ \t]*)([A-Za-z0-9+/]{8,}={0,2})[ \t]*\r?$", re.M)
_TOKEN = re.compile(rb"(?<![A-Za-z0-9+/_-])([A-Za-z0-9+/_-]{16,}={0,2})(?![A-Za-z0-9+/=_-])")
_DATA_SECTION_LIMIT = 65536
_LINE_LIMIT = 4096


def b64decode_text(token: bytes) -> bytes | None:
    """Decode standard or URL-safe base64 to printable UTF-8 text, else None."""
    padded = token + b"=" * (-len(token) % 4)
    try:
        if b"-" in token or b"_" in token:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 4:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return raw if printable >= 0.95 * len(text) else None


def _line_bounds(data: bytes, pos: int) -> tuple[int, int]:
    start = data.rfind(b"\n", max(0, pos - _LINE_LIMIT), pos) + 1
    end = data.find(b"\n", pos, pos + _LINE_LIMIT)
    return start, end if end >= 0 else min(len(data), pos + _LINE_LIMIT)


def decoded_lines(data: bytes, hits: list[tuple[str, int]]) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(token start, token end, line with the token decoded)`` for each layer;
    ``hits`` are ``(decoder kind, end offset)`` pairs."""
    seen: set[int] = set()
    done_k8s = False
    for kind, end in hits:
        if kind == "k8s":
            if done_k8s:
                continue
            done_k8s = True
            lo = max(0, end - _DATA_SECTION_LIMIT)
            stop = min(len(data), end + _DATA_SECTION_LIMIT)
            for match in _YAML_VALUE.finditer(data, lo, stop):
                start = match.start(2)
                if start in seen:
                    continue
                seen.add(start)
                decoded = b64decode_text(match.group(2))
                if decoded is not None:
                    key = match.group(1).strip()
                    # a Secret's values are secrets whatever their key is called
                    if not secret_name(key.rstrip(b":").decode("latin-1")):
                        key = b"secret:"
                    yield start, match.end(2), key + b" " + decoded
            continue
        lo, hi = _line_bounds(data, end)
        line = data[lo:hi]
        for match in _TOKEN.finditer(line):
            start = lo + match.start(1)
            if start in seen:
                continue
            seen.add(start)
            decoded = b64decode_text(match.group(1))
            if decoded is not None:
                prefix = line[: match.start(1)]
                suffix = line[match.end(1) :]
                yield start, lo + match.end(1), prefix + decoded + suffix
