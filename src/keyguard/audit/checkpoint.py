"""Signed checkpoints of the audit chain, kept outside the database (CloudTrail's digest files).

The head row in the database carries an HMAC that only the vault can compute,
which stops forgery; it cannot stop a rollback, because an older head with its
own valid HMAC (a restored backup, a truncated tail) is still one the vault
signed. An exported checkpoint names a head (counter, event count, last id and
hash) and is signed with an Ed25519 key derived from the sealed checkpoint key;
``keyguard audit verify --against FILE`` then proves that the log still holds
that head: the event at the checkpoint's id has the checkpoint's hash, and the
database's head is not older.

A checkpoint document::

    {"format": "keyguard-audit-checkpoint/1", "counter": 12, "events": 340,
     "last_id": 340, "last_hash": "…", "signed_at": "2026-…Z",
     "public_key": "<base64 Ed25519>", "signature": "<base64 over the rest>"}
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select

from keyguard.audit.chain import head_problem
from keyguard.audit.log import format_ts
from keyguard.errors import ChainIntegrityError, UsageError
from keyguard.store.tables import AuditEvent, AuditHead

FORMAT = "keyguard-audit-checkpoint/1"
_HINT = "write one with keyguard audit checkpoint --out"
_SIGNED_FIELDS = ("format", "counter", "events", "last_id", "last_hash", "signed_at", "public_key")


def signing_key(checkpoint_key: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key of exported checkpoints, derived from the vault's checkpoint key (never stored)."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyguard:audit-checkpoint-signing").derive(
        checkpoint_key
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key(checkpoint_key: bytes) -> str:
    """Base64 of the raw Ed25519 public key that verifies exported checkpoints (publishable)."""
    raw = (
        signing_key(checkpoint_key)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def _message(doc: Mapping[str, Any]) -> bytes:
    body = {name: doc.get(name) for name in _SIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def read_head(engine: Engine) -> tuple[int, str, str, int]:
    """``(last_id, last_hash, checkpoint, counter)`` of the head row."""
    with engine.connect() as conn:
        row = conn.execute(
            select(AuditHead.last_id, AuditHead.last_hash, AuditHead.checkpoint, AuditHead.counter).where(
                AuditHead.id == 1
            )
        ).one()
    return int(row[0]), str(row[1]), str(row[2] or ""), int(row[3] or 0)


def signed_checkpoint(engine: Engine, checkpoint_key: bytes, now: datetime) -> dict[str, Any]:
    """A signed checkpoint of the current head; refuses a head the vault did not sign.

    Only the head's HMAC is checked (no replay): whatever is older than the head
    is covered by the chain, which ``audit verify`` walks.
    """
    last_id, last_hash, mark, counter = read_head(engine)
    problem = head_problem(checkpoint_key, last_id, last_hash, counter, mark)
    if problem is not None:
        raise ChainIntegrityError(last_id, problem)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "counter": counter,
        "events": last_id,
        "last_id": last_id,
        "last_hash": last_hash,
        "signed_at": format_ts(now),
        "public_key": public_key(checkpoint_key),
    }
    doc["signature"] = base64.b64encode(signing_key(checkpoint_key).sign(_message(doc))).decode()
    return doc


def check_signature(checkpoint_key: bytes, doc: Mapping[str, Any]) -> None:
    """Raise :class:`ChainIntegrityError` unless ``doc`` was signed by this vault."""
    last_id = doc.get("last_id")
    where = last_id if isinstance(last_id, int) else 0
    try:
        signature = base64.b64decode(str(doc.get("signature", "")), validate=True)
        if doc.get("format") != FORMAT:
            raise ValueError("format")
        signing_key(checkpoint_key).public_key().verify(signature, _message(doc))
    except (InvalidSignature, ValueError):
        raise ChainIntegrityError(where, "the exported checkpoint is not signed by this vault") from None


def load_checkpoints(path: Path) -> list[dict[str, Any]]:
    """The checkpoints of ``path``: one JSON document, or JSON lines (a file sink's history)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    docs: list[dict[str, Any]] = []
    try:
        stripped = text.strip()
        if stripped.startswith("{") and "\n{" not in stripped:
            docs.append(json.loads(stripped))
        else:
            docs.extend(json.loads(line) for line in text.splitlines() if line.strip())
    except json.JSONDecodeError:
        raise UsageError(
            f"{path} is not a checkpoint file", hint="write one with keyguard audit checkpoint --out"
        ) from None
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise UsageError(f"{path} holds no checkpoint", hint=_HINT)
    return docs


def verify_against(engine: Engine, checkpoint_key: bytes, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Prove the log still holds every head in ``docs``; raise :class:`ChainIntegrityError` on rollback.

    Detects a truncated tail (the checkpoint's event is gone), a rewritten past
    (the event at the checkpoint's id has another hash) and a database restored
    to an older head (its counter is below the checkpoint's).
    """
    for doc in docs:
        check_signature(checkpoint_key, doc)
    last_id, _last_hash, _mark, counter = read_head(engine)
    newest = max(docs, key=lambda d: int(d["counter"]))
    for doc in sorted(docs, key=lambda d: int(d["counter"])):
        at, expected = int(doc["last_id"]), str(doc["last_hash"])
        if counter < int(doc["counter"]) or last_id < at:
            raise ChainIntegrityError(
                min(last_id + 1, at),
                f"the log was rolled back or truncated: its head (event {last_id}, counter {counter}) is older "
                f"than the exported checkpoint (event {at}, counter {doc['counter']})",
            )
        if at == 0:
            continue
        with engine.connect() as conn:
            found = conn.execute(select(AuditEvent.hash).where(AuditEvent.id == at)).scalar_one_or_none()
        if found is None or found != expected:
            raise ChainIntegrityError(at, f"event {at} differs from the exported checkpoint: the log was rewritten")
    return {
        "checkpoints": len(docs),
        "against_counter": int(newest["counter"]),
        "against_last_id": int(newest["last_id"]),
    }


def write_checkpoint_file(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically, mode 0600 (a private temporary file next to it, then rename)."""
    target = path.resolve().parent / path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, sort_keys=True, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
