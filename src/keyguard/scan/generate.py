"""Expansion of key-shaped example templates, so the repository holds no key-shaped literal.

Templates (innermost expanded first)::

    {gen:[A-Z2-7]*16}      16 characters drawn from the class
    {crc:ghp}              a checksummed GitHub/npm style token ``ghp_`` + 30 + 6
    {jwt:}                 a syntactically valid JWT
    {b64:TEXT}  {b64u:TEXT}  {hex:TEXT}   encodings of TEXT
    {pem:RSA PRIVATE KEY}  a PEM block with random base64 body
    {rawb64:32}            base64 of 32 random bytes
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import zlib

from keyguard.scan.validators import base62

_TEMPLATE = re.compile(r"\{(gen|crc|jwt|b64|b64u|hex|pem|rawb64|cat):([^{}]*)\}")
_B64_ALPHABET = string.ascii_letters + string.digits + "+/"


def _char_class(spec: str) -> str:
    body = spec[1:-1] if spec.startswith("[") and spec.endswith("]") else spec
    chars: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.extend(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.append(body[i])
            i += 1
    return "".join(dict.fromkeys(chars))


def _random_string(rng: random.Random, alphabet: str, count: int) -> str:
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(count))
        # keep generated values clear of filters for documented placeholders
        if count < 8 or not re.search(r"(.)\1{3}|xxxx|0123|1234|abcd", value, re.IGNORECASE):
            return value


def _expand_one(kind: str, arg: str, rng: random.Random) -> str:
    if kind == "gen":
        spec, _, count = arg.rpartition("*")
        return _random_string(rng, _char_class(spec), int(count))
    if kind == "crc":
        payload = _random_string(rng, string.ascii_letters + string.digits, 30)
        return f"{arg}_{payload}{base62(zlib.crc32(payload.encode()), 6)}"
    if kind == "jwt":
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"sub": _random_string(rng, string.digits, 10), "iat": rng.randint(10**9, 2**31)}
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        sig = _random_string(rng, string.ascii_letters + string.digits + "-_", 43)
        return f"{header.decode().rstrip('=')}.{body}.{sig}"
    if kind == "b64":
        return base64.b64encode(arg.encode()).decode()
    if kind == "b64u":
        return base64.urlsafe_b64encode(arg.encode()).decode().rstrip("=")
    if kind == "hex":
        return arg.encode().hex()
    if kind == "rawb64":
        return base64.b64encode(rng.randbytes(int(arg))).decode()
    if kind == "pem":
        body = base64.b64encode(rng.randbytes(600)).decode()
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        return f"-----BEGIN {arg}-----\n{lines}\n-----END {arg}-----"
    return arg  # "cat": literal text, used to split words the scanner would see


def expand(template: str, rng: random.Random | None = None) -> str:
    """Expand every template in ``template`` (innermost first) with ``rng``."""
    rng = rng or random.Random(0)
    text = template
    while True:
        new = _TEMPLATE.sub(lambda m: _expand_one(m.group(1), m.group(2), rng), text, count=1)
        if new == text:
            return text
        text = new
