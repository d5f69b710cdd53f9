"""A credential value that never shows itself: not in ``repr``, ``str``, logs or exceptions."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


class Secret:
    """Wraps a credential; :meth:`reveal` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value, for the one call that needs it."""
        return self._value

    def matches(self, other: str) -> bool:
        """Constant-time comparison with a plain value."""
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every non-trivial secret value replaced by ``***``."""
    for item in secrets:
        value = item.reveal() if isinstance(item, Secret) else item
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text
