"""The checksums that provider token formats embed (GitHub and npm: CRC32 in base62)."""

from __future__ import annotations

import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    """``number`` in base 62 (digits, upper, lower), left-padded with zeros to ``width``."""
    digits = ""
    while number:
        number, rem = divmod(number, 62)
        digits = BASE62[rem] + digits
    return digits.rjust(width, "0")


def crc32_token_ok(token: str) -> bool:
    """GitHub / npm style: ``prefix_`` + 30 random chars + 6 base62 chars of CRC32(random)."""
    body = token.rsplit("_", 1)[-1]
    if len(body) != 36:
        return False
    payload, check = body[:30], body[30:]
    return base62(zlib.crc32(payload.encode()), 6) == check
