"""The public API of keyguard.incident is what __all__ lists."""

from __future__ import annotations

import keyguard.incident as incident


def test_all_is_sorted_and_importable() -> None:
    assert incident.__all__ == sorted(incident.__all__)
    for name in incident.__all__:
        assert getattr(incident, name) is not None
