"""Predicate filters: values that look like secrets but are not (detect-secrets style).

Each filter is a plain function ``str -> bool`` returning True when the candidate
should be dropped. ``FILTERS`` maps a stable name to each so rules can opt out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX_HASH = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{56}|[0-9a-fA-F]{64})$")
_PREFIXED_HASH = re.compile(r"^(?:sha\d{1,3}|md5|sha|blake2b?)[-:=]", re.IGNORECASE)
_TEMPLATED = re.compile(
    r"\$\{[^}]*\}?|\{\{.*?\}\}|\{[^{}\s]{1,64}\}|\$\([^)]*\)|<%.*?%>|\{%.*?%\}"
    r"|%\([a-z_]+\)s|^\$[A-Za-z_][A-Za-z0-9_]*$"
    r"|os\.environ|getenv\(|process\.env|ENV\[|env\(|System\.getenv|secrets\.|vars\.|\{\$"
)
_PLACEHOLDER_WORDS = (
    "example",
    "sample",
    "dummy",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "insert_",
    "replace_",
    "redacted",
    "xxxx",
    "****",
    "....",
    "fixme",
    "<",
    ">",
    "notreal",
    "not_a_real",
    "test123",
    "foobar",
    "password123",
    "secret123",
    "abc123",
    "qwerty",
    "lorem",
    "mysecret",
    "mypassword",
    "supersecret",
    "s3cr3t",
    "hunter2",
    "fake_",
    "_fake",
    "-fake",
    "fake-",
    "x-oauth-basic",
    "demo_key",
    "do_not_use",
    "donotuse",
    "not_a_key",
)
_PLACEHOLDER_VALUES = frozenset(
    {
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "string",
        "password",
        "secret",
        "token",
        "test",
        "testing",
        "admin",
        "root",
        "default",
        "empty",
        "todo",
        "tbd",
        "n/a",
        "anonymous",
        "guest",
        "user",
        "username",
        "pass",
        "passwd",
        "secret_key",
        "api_key",
        "x-oauth-basic",
    }
)
_LONG_WORDS = ("example", "placeholder", "redacted", "changeme", "your_", "insert_", "<", ">")
_PROSE = re.compile(r"^[A-Za-z,.'!?]+(?: [A-Za-z,.'!?]+)+$")
_LONG_RUN = re.compile(r"(.)\1{11,}")
_REPEATED = re.compile(r"^(.)\1{5,}$|(.)\2{7,}")
_SEQUENTIAL = ("0123456789", "abcdefghij", "ABCDEFGHIJ", "1234567890")
_PUBLIC_KEY = re.compile(r"PUBLIC KEY|^ssh-(?:rsa|ed25519|dss) |^ecdsa-sha2-", re.IGNORECASE)
_PATHLIKE = re.compile(r"^(?:/|\./|\.\./|~/|[A-Za-z]:\\)|\.(?:py|js|ts|go|java|json|ya?ml|txt|md|html|png|jpg)$")
_IDENTIFIER = re.compile(
    r"^[A-Za-z_]+[0-9]?(?:[_.-]+[A-Za-z_]+[0-9]?)+$|^[a-z]+(?:[A-Z][a-z]+)+$"
    r"|^[A-Za-z_][A-Za-z_]*[0-9]{0,2}(?:\.[A-Za-z_][A-Za-z_]*[0-9]{0,2})+$"
)


def is_uuid(value: str) -> bool:
    """A UUID (any version) is an identifier, not a secret."""
    return bool(_UUID.match(value))


def is_hash(value: str) -> bool:
    """Hex digests of common hash lengths, or ``sha256:…``-style prefixed digests."""
    return bool(_HEX_HASH.match(value) or _PREFIXED_HASH.match(value))


def is_templated(value: str) -> bool:
    """Template or environment references: ``${VAR}``, ``{{ x }}``, ``os.environ[...]``."""
    return bool(_TEMPLATED.search(value))


def is_placeholder(value: str) -> bool:
    """Documented example values, masks and obvious dummies (also percent-encoded,
    accented, bracketed or numbered: ``p%C3%A4ssword``, ``[password]``, ``password2``)."""
    if "%" in value:
        from urllib.parse import unquote

        value = unquote(value)
    if not value.isascii():
        import unicodedata

        value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    low = value.lower()
    bare = low.strip("[](){}<>:;,.'\"`").rstrip("0123456789")
    if low in _PLACEHOLDER_VALUES or bare in _PLACEHOLDER_VALUES:
        return True
    if ":" in bare and all(part in _PLACEHOLDER_VALUES for part in bare.split(":")):
        return True
    if len(value) >= 64:  # long random values contain short patterns by chance
        return bool(_LONG_RUN.search(value)) or any(w in low for w in _LONG_WORDS)
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return True
    if _REPEATED.search(value):
        return True
    return any(seq in value for seq in _SEQUENTIAL)


def is_public_key(value: str) -> bool:
    """Public keys are meant to be shared."""
    return bool(_PUBLIC_KEY.search(value))


_CODE_CHARS = re.compile(r"^[A-Za-z0-9_.]+$")
_ALGO_NUMBER = re.compile(r"[A-Za-z]?[0-9]+")
_VOWEL = re.compile(r"[aeiouy]")
_CONSONANTS = re.compile(r"[b-df-hj-np-tv-xz]{4,}", re.IGNORECASE)
_MODULE_PREFIX = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)+")
_CAPITALISED = re.compile(r"[A-Z][a-z]{2,}")
_ACRONYM = re.compile(r"[A-Z]{2,}(?![a-z])")


def is_code_identifier(value: str) -> bool:
    """Type and attribute names made of capitalised words: ``_PasswordType``,
    ``x25519.X25519PrivateKey``, ``PKCS7PrivateKeyTypes``. Random tokens seldom consist of
    ``[A-Z][a-z]{2,}`` runs."""
    if not _CODE_CHARS.match(value):
        return False
    rest = _ALGO_NUMBER.sub("_", _MODULE_PREFIX.sub("", value))
    letters = sum(c.isalpha() for c in rest)
    chunks = [
        c for c in _CAPITALISED.findall(rest) if len(_VOWEL.findall(c)) * 4 >= len(c) and not _CONSONANTS.search(c)
    ]
    acronyms = [a for a in _ACRONYM.findall(rest) if len(a) <= 5]
    covered = sum(map(len, chunks)) + (len(acronyms[0]) if acronyms else 0)
    return len(chunks) >= 2 and covered >= 9 and covered >= 0.8 * letters


def is_path_or_identifier(value: str) -> bool:
    """File paths and identifiers (``user_name``, ``camelCase``, ``_PasswordType``)."""
    return bool(_PATHLIKE.search(value) or _IDENTIFIER.match(value) or is_code_identifier(value))


# SHA-256 of example values printed in providers' documentation (Stripe, AWS, GitHub,
# Slack, Google); hashed so that this file holds no key-shaped literal.
_DOCUMENTED_SHA256 = frozenset(
    {
        "2cafc0970149a84f3b9e62eaf169f36f59907a3b3e31f7b82e68c69cd27f7326",
        "78314b11be2e581549ac1c4f616563fad3fdf0c3b71678f6e2299182080e0598",
        "1a5d44a2dca19669d72edf4c4f1c27c4c1ca4b4408fbb17f6ce4ad452d78ddb3",
        "3543c50b0cb9cea8e55eb1f529b79f043cb250d485fde7b66cabbb5183add7da",
        "2ddc147f3a3b5a1722b8ed6be3c45c49a7156b17fca5d11410137a6d04def6eb",
        "b1471f544ceeea31333bde7e1ecbaad6eac0d4a749412ad29bd66ef895b81c6b",
        "f2d6ca16515033e5dce14eba840b979d27b5cbae24bb3e5bf484339667f86397",
        "ac9265e56c79b234607ec72c53753cfea9f88c99eb713790ddf9be5593bb4465",
        "e21b597ba6b9cafa59d9ebc4d65c0385f5eb3fa56abab2607fa76589ad849a33",
        "c6ea27c534f993d31f0aef882e3d200e7b87470c379ae79c8f9b19d3bd363dc9",
        "bf145d9380bbe05bdc1a72525796b224f8a8c93ae0e9e102eafbc255ac1af9e8",
        # the jwt.io sample token, RFC 7617's Aladdin:open sesame (base64 and password),
        # GitHub's x-oauth-basic password placeholder
        "7f75367e7881255134e1375e723d1dea8ad5f6a4fdb79d938df1f1754a830606",
        "cf4d418ed3de92d71f767db5391d5a2dacd40e1ce49e75d1137e2ecf4982d844",
        "41ef4bb0b23661e66301aac36066912dac037827b4ae63a7b1165a5aa93ed4eb",
        "737c8fcb2bfcfe139d6bbe2d9aa3a020b76d133bd88734159f70b55702dfb23e",
    }
)


# digests of words nobody uses as a secret ("password", "secret", "1" …): a digest of one
# in a config file is a test fixture, not a key
_TRIVIAL_WORDS = ("password", "secret", "test", "admin", "hello", "changeme", "123456", "12345678", "root", "")
_TRIVIAL_DIGESTS = frozenset(
    getattr(hashlib, algo)(word.encode()).hexdigest()
    for algo in ("md5", "sha1", "sha256")
    for word in (*_TRIVIAL_WORDS, *"0123456789")
)


def is_documented_example(value: str) -> bool:
    """A value published as an example in a provider's documentation or an RFC, or a
    digest of a trivial word."""
    if value.lower() in _TRIVIAL_DIGESTS:
        return True
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest() in _DOCUMENTED_SHA256


_CHECKSUMMED = re.compile(r"^(?:gh[pousr]|npm)_[A-Za-z0-9]{36}$")


def fails_checksum(value: str) -> bool:
    """A token in a checksummed provider format (GitHub, npm) whose checksum is wrong: a
    made-up value, which no rule (generic ones included) reports."""
    if not _CHECKSUMMED.match(value):
        return False
    from keyguard.scan.checksums import crc32_token_ok

    return not crc32_token_ok(value)


def is_encoded_placeholder(value: str) -> bool:
    """Base64 of a placeholder or template (``Y2hhbmdlbWU=`` is ``changeme``)."""
    if len(value) < 8 or len(value) % 4 or not value.isascii():
        return False
    from keyguard.scan.decode import b64decode_text

    raw = b64decode_text(value.encode())
    if raw is None:
        return False
    text = raw.decode("utf-8", "replace").strip()
    return is_placeholder(text) or is_templated(text) or bool(_PROSE.match(text))


FILTERS: dict[str, Callable[[str], bool]] = {
    "uuid": is_uuid,
    "hash": is_hash,
    "templated": is_templated,
    "placeholder": is_placeholder,
    "public_key": is_public_key,
    "identifier": is_path_or_identifier,
    "encoded_placeholder": is_encoded_placeholder,
    "documented": is_documented_example,
    "checksum": fails_checksum,
}


def rejected_by(value: str, skip: frozenset[str] = frozenset()) -> str | None:
    """Name of the first filter that drops ``value`` (ignoring ``skip``), else None."""
    for name, predicate in FILTERS.items():
        if name not in skip and predicate(value):
            return name
    return None
