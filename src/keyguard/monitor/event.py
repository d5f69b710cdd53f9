"""The event every importer produces and every detector reads (SPEC §5 fields plus origin)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

RESULTS = frozenset({"ok", "denied", "error"})


@dataclass(slots=True)
class MonitorEvent:
    """One call against a key, from keyguard's audit log or a foreign log.

    ``source`` is the format name (``jsonl``, ``cloudtrail``, ``keyguard`` …) and
    ``source_line`` the 1-based line (or record ordinal) it came from. ``natural_id``
    is the source's own unique id (CloudTrail ``eventID``, Vault ``request.id``) used
    for de-duplication only.
    """

    ts: str
    op: str
    result: str
    key: str | None = None
    version: int | None = None
    actor: str = ""
    source_ip: str | None = None
    user_agent: str | None = None
    reason: str | None = None
    request_id: str | None = None
    source: str = "jsonl"
    source_line: int = 0
    source_file: str | None = None
    natural_id: str | None = None

    def content_hash(self) -> str:
        """Identity for de-duplication: same call from the same kind of source → same hash.

        32 characters: the hour of ``ts``, then 88 bits of MD5 (an identity, not a
        security boundary; MD5 because the segment store computes the same value in
        DuckDB SQL, :data:`keyguard.monitor.segments.CONTENT_HASH_SQL`). A source's
        own unique id (CloudTrail ``eventID``, Vault ``request.id``) identifies the
        event with its time; without one every field counts, and the line number
        stands in for the id so that identical lines (two equal requests in one
        second) stay two events while a re-import of the same file still matches
        line for line.
        """
        if self.natural_id:
            text = "\x1f".join((self.source, self.natural_id, self.ts))
        else:
            text = "\x1f".join(
                (
                    self.source,
                    self.request_id or f"line:{self.source_line}",
                    self.ts,
                    self.actor,
                    self.source_ip or "",
                    self.user_agent or "",
                    self.op,
                    self.key or "",
                    "" if self.version is None else str(self.version),
                    self.result,
                    self.reason or "",
                )
            )
        digest = hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()
        # A time prefix (YYYYMMDDHH) keeps stored hashes clustered by time.
        return self.ts[0:4] + self.ts[5:7] + self.ts[8:10] + self.ts[11:13] + digest[:22]

    def to_record(self) -> dict[str, Any]:
        """SPEC §5 shape (without chain fields) plus ``source`` and ``source_line``."""
        return {
            "ts": self.ts,
            "actor": self.actor,
            "source_ip": self.source_ip,
            "user_agent": self.user_agent,
            "op": self.op,
            "key": self.key,
            "version": self.version,
            "result": self.result,
            "reason": self.reason,
            "request_id": self.request_id,
            "source": self.source,
            "source_line": self.source_line,
        }
