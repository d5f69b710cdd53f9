"""What the resource playbook keeps in keyguard's own stores.

* the incident's key name for a reference (incidents name keys as ``[a-z0-9][a-z0-9._-]{0,63}``);
* the system's usage records imported into the monitor store under that name, so the
  existing assessment grades them (new source IPs, bursts, refused calls);
* ciphertexts made under a KMS or transit key, registered in keyguard's data inventory
  (``data_items`` with the resource's key name) and re-encrypted by its rotation.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Engine, insert, select, update

from keyguard.connectors.base import UsageRecord
from keyguard.connectors.refs import Ref
from keyguard.errors import ConflictError, UsageError
from keyguard.incident.service import DATA_CLASSES
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers import cloudtrail, jsonl, vault_audit
from keyguard.monitor.importers.base import ImportOptions
from keyguard.monitor.store import import_stream
from keyguard.store.db import write_tx
from keyguard.store.tables import DataItem

CIPHERTEXT_KINDS = ("kms-key", "transit")
_SLUG = re.compile(r"[^a-z0-9._-]+")


def resource_key(ref: Ref) -> str:
    """The incident key name of ``ref``: readable, and a digest whenever the text had to change."""
    text = f"{ref.connector}.{ref.kind}.{ref.id}"
    slug = _SLUG.sub("-", text.lower()).strip("-._") or "resource"
    if slug == text and len(slug) <= 64:
        return slug
    digest = hashlib.sha256(str(ref).encode()).hexdigest()[:12]
    return f"{slug[:51].rstrip('-._')}.{digest}"


def usage_events(records: Sequence[UsageRecord], key: str) -> list[MonitorEvent]:
    """The records as monitor events under ``key`` (through the existing importers)."""
    events: list[MonitorEvent] = []
    vault_lines: list[bytes] = []
    for line, item in enumerate(records, 1):
        if item.format == "cloudtrail":
            parsed = cloudtrail.event_from_record(item.record, line=line, name=None)
        elif item.format == "event":
            parsed = jsonl.event_from_record(item.record, source="jsonl", line=line, name=None)
        else:
            vault_lines.append(orjson.dumps(item.record))
            continue
        if isinstance(parsed, MonitorEvent):
            events.append(parsed)
    if vault_lines:
        stream = io.BytesIO(b"\n".join(vault_lines) + b"\n")
        events += [p for p in vault_audit.parse(stream, name=None, options=ImportOptions())
                   if isinstance(p, MonitorEvent)]
    for event in events:
        event.key = key
    return events


def import_usage(engine: Engine, records: Sequence[UsageRecord], key: str) -> dict[str, int]:
    """Store the records (duplicates of an earlier import are skipped); returns the counts."""
    events = usage_events(records, key)
    stats = import_stream(engine, events)
    return {"records": len(records), "events": len(events), "imported": stats.imported,
            "duplicates": stats.duplicates}


def register_ciphertext(engine: Engine, ref: Ref, name: str, data_class: str, records: int, ciphertext: str,
                        now: datetime) -> dict[str, object]:
    """Record a ciphertext made under a KMS or transit key, and what it protects."""
    if ref.kind not in CIPHERTEXT_KINDS:
        raise UsageError(f"{ref}: only {' and '.join(CIPHERTEXT_KINDS)} resources hold ciphertexts")
    if not name or len(name) > 256:
        raise UsageError("invalid data item name", hint="1 to 256 characters")
    if data_class not in DATA_CLASSES:
        raise UsageError(f"unknown data class {data_class!r}", hint="one of " + ", ".join(DATA_CLASSES))
    text = ciphertext.strip()
    if not text or len(text) > 1 << 20 or any(c.isspace() for c in text):
        raise UsageError("the ciphertext on stdin is empty or not one token", hint="pipe one ciphertext")
    version = int(text.split(":")[1][1:]) if re.match(r"^vault:v\d+:", text) else 0
    with write_tx(engine) as conn:
        if conn.execute(select(DataItem.id).where(DataItem.name == name)).first():
            raise ConflictError(f"data item {name!r} already exists")
        conn.execute(insert(DataItem).values(
            name=name, data_class=data_class, records=records, key_name=resource_key(ref), version=version,
            ciphertext=text, context={"resource": str(ref)}, created_at=now, updated_at=now))
    return {"name": name, "key": resource_key(ref), "resource": str(ref), "class": data_class, "records": records}


def registered_ciphertexts(engine: Engine, ref: Ref) -> list[tuple[int, str]]:
    """(row id, ciphertext) of the items registered under ``ref``, in registration order."""
    with engine.connect() as conn:
        rows = conn.execute(select(DataItem.id, DataItem.ciphertext).where(
            DataItem.key_name == resource_key(ref), DataItem.is_deleted.is_(False)).order_by(DataItem.id)).all()
    return [(int(i), str(c)) for i, c in rows]


def store_rewrapped(engine: Engine, ref: Ref, new_ref: Ref, pairs: Sequence[tuple[str, str]], now: datetime) -> int:
    """Replace each old ciphertext by its re-encryption, all in one transaction; returns the rows changed."""
    mapping = dict(pairs)
    changed = 0
    with write_tx(engine) as conn:
        rows = conn.execute(select(DataItem.id, DataItem.ciphertext).where(
            DataItem.key_name == resource_key(ref), DataItem.is_deleted.is_(False))).all()
        for row_id, old in rows:
            new = mapping.get(str(old))
            if new is None:
                continue
            version = int(new.split(":")[1][1:]) if re.match(r"^vault:v\d+:", new) else 0
            conn.execute(update(DataItem).where(DataItem.id == row_id).values(
                ciphertext=new, version=version, key_name=resource_key(new_ref), updated_at=now,
                context={"resource": str(new_ref)}))
            changed += 1
    return changed
