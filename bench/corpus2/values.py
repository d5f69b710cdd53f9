"""Credential values for the second accuracy corpus, made from the providers' published
formats with this module's own random source (no rule template, no other scanner's
fixtures). Every maker takes a ``random.Random`` and returns one fresh value.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
import zlib
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase

Maker = Callable[[random.Random], str]


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    """``n`` characters of ``alphabet``; re-drawn while it holds a run or a sequence that
    placeholder filters of any tool would (rightly) treat as a dummy."""
    while True:
        out = "".join(rng.choice(alphabet) for _ in range(n))
        low = out.lower()
        if not any(bad in low for bad in ("xxxx", "0000", "1234", "abcd", "test", "fake", "exampl", "dummy")):
            if not any(out[i] == out[i + 1] == out[i + 2] == out[i + 3] for i in range(len(out) - 3)):
                return out


def _b62(number: int, width: int) -> str:
    out = ""
    while number:
        number, rem = divmod(number, 62)
        out = _B62[rem] + out
    return out.rjust(width, "0")


def checksummed(prefix: str, rng: random.Random, *, valid: bool = True) -> str:
    """A GitHub / npm style token: 30 random characters and the base62 CRC32 of them."""
    body = pick(rng, ALNUM, 30)
    check = _b62(zlib.crc32(body.encode()), 6)
    if not valid:
        check = check[::-1] if check[::-1] != check else pick(rng, ALNUM, 6)
    return f"{prefix}_{body}{check}"


def password(rng: random.Random) -> str:
    """A password a person picked: words, digits and a symbol, or a generated one."""
    if rng.random() < 0.5:
        words = ["Falcon", "river", "Maple", "orbit", "Cobalt", "tundra", "Quartz", "ember", "Vortex", "lumen"]
        return rng.choice(words) + pick(rng, string.digits, 3) + rng.choice("!#%&*@$") + rng.choice(words).lower()
    return pick(rng, ALNUM, rng.randint(10, 14)) + rng.choice("!#%*@") + pick(rng, string.digits, 2)


def random_b64(rng: random.Random, nbytes: int, alphabet: str = "std") -> str:
    """Base64 of ``nbytes`` random bytes (``std`` with padding or ``url`` without)."""
    raw = rng.randbytes(nbytes)
    if alphabet == "url":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


def jwt_token(rng: random.Random) -> str:
    """A signed JWT with realistic claims."""
    header = {"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}
    claims = {
        "sub": str(uuid.UUID(int=rng.getrandbits(128))),
        "iss": rng.choice(["https://auth.acme.io/", "api", "keycloak"]),
        "exp": rng.randint(1_800_000_000, 1_900_000_000),
        "scope": rng.choice(["read write", "admin", "svc"]),
    }
    parts = [base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in (header, claims)]
    return ".".join([*parts, random_b64(rng, 32, "url")])


def pem_body(rng: random.Random, label: str, lines: int = 8) -> list[str]:
    """PEM lines: header, ``lines`` lines of 64 base64 characters, footer."""
    raw = b"\x30\x82\x04\xa4\x02\x01\x00" + rng.randbytes(48 * lines)
    text = base64.b64encode(raw).decode()
    body = [text[i : i + 64] for i in range(0, len(text), 64)][:lines]
    return [f"-----BEGIN {label}-----", *body, f"-----END {label}-----"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# provider tokens: name -> maker -----------------------------------------------------------

PROVIDERS: dict[str, Maker] = {
    "aws-key-id": lambda r: "AKIA" + pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "aws-secret": lambda r: pick(r, B64, 40),
    "github-classic": lambda r: checksummed("ghp", r),
    "github-oauth": lambda r: checksummed("gho", r),
    "github-fine": lambda r: "github_pat_" + pick(r, UPPER_ALNUM, 22) + "_" + pick(r, ALNUM, 59),
    "gitlab-pat": lambda r: "glpat-" + pick(r, ALNUM + "-_", 20),
    "slack-bot": lambda r: f"xoxb-{pick(r, string.digits, 12)}-{pick(r, string.digits, 13)}-{pick(r, ALNUM, 24)}",
    "stripe-live": lambda r: "sk_live_" + pick(r, ALNUM, 48),
    "openai": lambda r: "sk-proj-" + pick(r, B64URL, 58) + "T3BlbkFJ" + pick(r, B64URL, 58),
    "anthropic": lambda r: "sk-ant-api03-" + pick(r, B64URL, 93) + "AA",
    "google-api": lambda r: "AIza" + pick(r, B64URL, 35),
    "sendgrid": lambda r: "SG." + pick(r, B64URL, 22) + "." + pick(r, B64URL, 43),
    "npm": lambda r: checksummed("npm", r),
    "facebook-token": lambda r: "EAA" + r.choice(["B", "G", "J"]) + pick(r, ALNUM, r.randint(140, 190)),
    "sourcegraph": lambda r: "sgp_" + pick(r, HEX, 16) + "_" + pick(r, HEX, 40),
    "newrelic-user": lambda r: "NRAK-" + pick(r, UPPER_ALNUM, 27),
    "newrelic-license": lambda r: pick(r, HEX, 36) + "NRAL",
    "telegram": lambda r: f"{r.randint(10**8, 9 * 10**9)}:AA{pick(r, B64URL, 33)}",
    "square": lambda r: "EAAA" + pick(r, B64URL, 60),
    "square-oauth": lambda r: "sq0csp-" + pick(r, B64URL, 43),
    "mapbox": lambda r: (
        "sk.eyJ1Ijoi" + pick(r, ALNUM, 20) + "IiwiYSI6I" + pick(r, ALNUM, 22) + "In0." + pick(r, B64URL, 22)
    ),
    "teams-webhook": lambda r: (
        f"https://{pick(r, string.ascii_lowercase, 6)}.webhook.office.com/webhookb2/"
        f"{_uuid(r)}@{_uuid(r)}/IncomingWebhook/{pick(r, HEX, 32)}/{_uuid(r)}"
    ),
    "bitbucket-dc": lambda r: "BBDC-" + pick(r, B64, 44),
    "databricks": lambda r: "dapi" + pick(r, HEX, 32),
    "shopify": lambda r: r.choice(["shpat_", "shpca_", "shppa_"]) + pick(r, HEX, 32),
    "atlassian": lambda r: "ATATT3xFfGF0" + pick(r, B64URL, 170) + "=" + pick(r, UPPER_ALNUM, 8),
    "vault-service": lambda r: "hvs.CAESI" + pick(r, B64URL, 90),
    "vault-batch": lambda r: "hvb.AAAAAQ" + pick(r, B64URL, 130),
    "vault-legacy": lambda r: "s." + pick(r, ALNUM, 24),
    "sentry-org": lambda r: "sntrys_eyJpYXQiOjE3" + pick(r, B64URL, 140) + "_" + pick(r, B64URL, 43),
    "alibaba-id": lambda r: "LTAI" + pick(r, ALNUM, 20),
    "tencent-id": lambda r: "AKID" + pick(r, ALNUM, 32),
    "dingtalk-hook": lambda r: "https://oapi.dingtalk.com/robot/send?access_token=" + pick(r, HEX, 64),
    "feishu-hook": lambda r: "https://open.feishu.cn/open-apis/bot/v2/hook/" + _uuid(r),
    "wecom-hook": lambda r: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + _uuid(r),
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + pick(r, B64URL, 150),
    "hf": lambda r: "hf_" + pick(r, string.ascii_letters, 34),
    "twilio": lambda r: "SK" + pick(r, HEX, 32),
}

# values that providers' own documents, RFCs and tutorials print (never real keys)
DOCUMENTED = {
    "aws-key-id": "AKIAIOSFODNN7EXAMPLE",
    "aws-secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "jwt": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
        "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    ),
    "basic": base64.b64encode(b"Aladdin:open sesame").decode(),
}


def secret_key_material(rng: random.Random, kind: str) -> str:
    """Prefix-less key material: AES (hex / base64), Fernet, Django, Rails, HMAC / JWT."""
    if kind == "aes-hex":
        return rng.randbytes(32).hex()
    if kind == "aes-b64":
        return base64.b64encode(rng.randbytes(rng.choice([16, 32]))).decode()
    if kind == "fernet":
        return base64.urlsafe_b64encode(rng.randbytes(32)).decode()
    if kind == "django":
        alphabet = string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)"
        return pick(rng, alphabet, 50)
    if kind == "rails":
        return rng.randbytes(64).hex()
    if kind == "hmac":
        return pick(rng, ALNUM, rng.choice([32, 40, 48]))
    raise ValueError(kind)
