"""Shannon entropy of strings, in bits per character."""

from __future__ import annotations

import math
from collections import Counter


def shannon(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character (0.0 for the empty string)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum((c / n) * math.log2(c / n) for c in Counter(text).values())
