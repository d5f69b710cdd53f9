"""Is a variable name secret-bearing? The context check of the generic rules.

A name is split into words whatever its casing or separators (``DB_PASSWORD``,
``dbPassword``, ``x-api-key``, ``app.jwt.signing-key``, ``APIKey``, ``authtoken``). It is
secret-bearing when it holds a secret word (password, secret, token, key, credentials,
auth …) and does not say "identifier": a last word such as ``id``, ``url``, ``name``,
``field``, ``hash`` (``secret_name``, ``token_url``), an identifier word anywhere
(``commit_sha``, ``public_key``, ``key_fingerprint``), or a ``*_key`` whose qualifier
names a lookup key (``cache_key``, ``sort_key``, ``partition_key``, bare ``key``).
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "pw", "pass", "secret", "secrets", "token", "tokens",
        "key", "keys", "credential", "credentials", "creds", "auth", "apikey",
    }
)  # fmt: skip
# compounds written as one word: "authtoken", "dbpassword", "clientsecret", "apikey"
_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey")
_KEY_PREFIXES = frozenset(
    {
        "api", "secret", "private", "access", "master", "signing", "sign", "encryption", "enc", "crypt",
        "app", "client", "consumer", "license", "session", "auth", "aes", "hmac", "jwt", "service",
        "account", "admin", "root", "webhook", "subscription", "shared", "data", "storage", "cookie",
    }
)  # fmt: skip
_TAILS = frozenset(
    {
        "id", "ids", "name", "names", "url", "uri", "urls", "endpoint", "host", "hostname", "port", "field",
        "fields", "ref", "reference", "path", "file", "filename", "dir", "type", "types", "header",
        "length", "len", "size", "prefix", "suffix", "env", "var", "variable", "label", "format", "fmt",
        "pattern", "regex", "mode", "hint", "policy", "rule", "rules", "count", "min", "max", "hash",
        "hashed", "digest", "sha", "checksum", "version", "algorithm", "alg", "enabled", "disabled",
        "required", "expiry", "expires", "expiration", "ttl", "timeout", "location", "store", "provider",
        "manager", "class", "question", "reset", "changed", "strength", "validator", "input",
        "placeholder", "lifetime", "duration", "kind", "param", "column", "attr", "attribute", "prompt",
        "message", "msg", "error", "text", "title", "description", "desc", "help", "link", "page",
        "button", "dialog", "form", "view", "template", "route", "handler", "callback", "scope", "scopes",
        "method", "style", "icon", "index", "position", "offset", "timestamp", "date", "time", "at",
        "age", "limit", "interval", "retries", "attempts", "status", "state", "flag", "check", "verify",
        "validation", "schema", "model", "serializer", "factory", "builder", "cache", "list",
        "map", "set", "request", "response", "server", "source", "target", "user", "username", "login",
        "email", "mail",
    }
)  # fmt: skip
_IDENTIFIER_WORDS = frozenset(
    {
        "sha", "sha1", "sha256", "sha512", "md5", "hash", "checksum", "digest", "etag", "commit", "uuid",
        "guid", "fingerprint", "integrity", "public", "publishable", "pub", "placeholder", "example",
        "sample", "dummy", "fake", "mock",
    }
)  # fmt: skip
_LOOKUP_KEYS = frozenset(
    {
        "cache", "sort", "primary", "foreign", "partition", "idempotency", "lookup", "hash", "map", "dict",
        "row", "range", "shard", "group", "object", "unique", "composite", "natural", "registry", "event",
        "message", "route", "state", "metric", "template", "label", "index", "field", "column",
        "translation", "i18n", "locale", "lang", "react", "list", "item", "node", "entry", "cursor",
        "dedup", "join", "parent", "child", "table", "query", "search", "order", "bucket", "file",
        "config", "setting", "settings", "name", "display", "menu", "tab", "section", "nav", "hotkey",
        "short", "shortcut", "keyboard", "press", "up", "down", "left", "right", "enter", "escape", "esc",
        "ctrl", "alt", "shift", "meta", "space", "home", "end", "delete", "backspace", "modifier",
        "value", "next", "prev", "last", "first", "media", "asset", "static", "release", "feature",
        "toggle", "experiment", "site", "redis", "blob", "sorting",
    }
)  # fmt: skip
_SPECIAL_SECRETS = (("private", "key", "id"),)  # a service-account key id names the key


def words(name: str) -> list[str]:
    """The lower-case words of a name in any casing, compounds split."""
    out: list[str] = []
    for raw in _WORD.findall(name):
        word = raw.lower()
        for suffix in _SUFFIXES:
            if word != suffix and word.endswith(suffix) and len(word) - len(suffix) >= 2:
                out.extend((word[: -len(suffix)], suffix))
                break
        else:
            if word.endswith("key") and word[:-3] in _KEY_PREFIXES:
                out.extend((word[:-3], "key"))
            else:
                out.append(word)
    return out


@lru_cache(maxsize=4096)
def secret_name(name: str) -> bool:
    """True when ``name`` is a secret-bearing variable, key or header name."""
    parts = [w for w in words(name) if w not in ("x", "the", "my")]
    if not parts or not any(w in _SECRET_WORDS for w in parts):
        return False
    if tuple(parts[-3:]) in _SPECIAL_SECRETS:
        return True
    if any(w in _IDENTIFIER_WORDS for w in parts):
        return False
    if parts[-1] in _TAILS:
        return False
    last = max(i for i, w in enumerate(parts) if w in _SECRET_WORDS)
    if parts[last] in ("key", "keys"):
        if last == 0 or parts[last - 1] in _LOOKUP_KEYS:
            return False
        if parts[last] == "keys" and parts[last - 1] not in _KEY_PREFIXES:
            return False  # restore-keys, pgp-keys: lists of names, seldom a secret
    return True
