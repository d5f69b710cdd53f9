"""AWS CloudTrail: ``{"Records": [...]}`` files (gzip or not, streamed) or one record per line.

KMS calls map to the KMS key (``requestParameters.keyId`` or the key ARN in
``resources``); any other call made with an IAM access key maps to that access key
id. ``errorCode`` makes the result ``denied`` (access / state errors) or ``error``.
For array files ``source_line`` is the record's ordinal in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
import orjson

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, iter_lines, text
from keyguard.monitor.timeutil import TimeFormatError, normalize_ts

_ARRAY_HEAD = re.compile(rb'^\s*\{\s*"Records"\s*:\s*\[')
KMS_OPERATIONS = {
    "Encrypt": "encrypt",
    "Decrypt": "decrypt",
    "ReEncrypt": "rewrap",
    "GenerateDataKey": "generate-data-key",
    "GenerateDataKeyWithoutPlaintext": "generate-data-key",
    "GenerateDataKeyPair": "generate-data-key",
    "GenerateDataKeyPairWithoutPlaintext": "generate-data-key",
    "Sign": "sign",
    "Verify": "verify",
    "GenerateMac": "mac",
    "VerifyMac": "verify-mac",
    "DisableKey": "disable",
    "EnableKey": "enable",
    "ScheduleKeyDeletion": "destroy",
    "RotateKeyOnDemand": "rotate",
}
DENIED_CODES = re.compile(
    r"AccessDenied|Unauthorized|Forbidden|InvalidState|Disabled|NotAuthorized|"
    r"InvalidClientTokenId|SignatureDoesNotMatch|ExpiredToken|KeyUnavailable|InvalidKeyUsage",
    re.IGNORECASE,
)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_op_cache: dict[str, str] = {}


def _op(event_name: str) -> str:
    op = _op_cache.get(event_name)
    if op is None:
        op = KMS_OPERATIONS.get(event_name) or _CAMEL.sub("-", event_name).lower()[:64]
        _op_cache[event_name] = op
    return op


def _kms_key(record: dict[str, Any]) -> str | None:
    params = record.get("requestParameters")
    if isinstance(params, dict):
        key_id = params.get("keyId") or params.get("destinationKeyId") or params.get("sourceKeyId")
        if isinstance(key_id, str) and key_id:
            return key_id[:256]
    for resource in record.get("resources") or ():
        if isinstance(resource, dict):
            arn = resource.get("ARN")
            if isinstance(arn, str) and ":key/" in arn:
                return arn[:256]
    return None


def event_from_record(record: Any, *, line: int, name: str | None) -> Parsed:
    """Map one CloudTrail record to an event, or a rejection."""
    if not isinstance(record, dict):
        return Rejected(line, "record is not a JSON object", name)
    event_time, event_name = record.get("eventTime"), record.get("eventName")
    if not isinstance(event_time, str) or not isinstance(event_name, str):
        return Rejected(line, "missing eventTime or eventName", name)
    try:
        ts = normalize_ts(event_time)
    except TimeFormatError as exc:
        return Rejected(line, str(exc), name)
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    key = _kms_key(record) if record.get("eventSource") == "kms.amazonaws.com" else None
    if key is None:
        access_key = identity.get("accessKeyId")
        key = access_key[:256] if isinstance(access_key, str) and access_key else None
    actor = identity.get("arn") or identity.get("principalId") or identity.get("userName") or ""
    error_code = record.get("errorCode")
    if error_code:
        result = "denied" if DENIED_CODES.search(str(error_code)) else "error"
        message = record.get("errorMessage")
        reason: str | None = f"{error_code}: {message}" if message else str(error_code)
    else:
        result, reason = "ok", None
    event_id = record.get("eventID")
    return MonitorEvent(
        ts=ts,
        op=_op(event_name),
        result=result,
        key=key,
        actor=str(actor)[:256],
        source_ip=text(record.get("sourceIPAddress"), 64),
        user_agent=text(record.get("userAgent"), 512),
        reason=reason[:4000] if reason else None,
        request_id=text(record.get("requestID"), 128),
        source="cloudtrail",
        source_line=line,
        source_file=name,
        natural_id=event_id if isinstance(event_id, str) else None,
    )


def _parse_array(stream: IO[bytes], name: str | None) -> Iterator[Parsed]:
    ordinal = 0
    try:
        for record in ijson.items(stream, "Records.item", use_float=True, multiple_values=True):
            ordinal += 1
            yield event_from_record(record, line=ordinal, name=name)
    except ijson.JSONError as exc:
        yield Rejected(ordinal + 1, f"invalid JSON after record {ordinal}: {type(exc).__name__}", name)


def _parse_lines(stream: IO[bytes], name: str | None) -> Iterator[Parsed]:
    loads, mapper = orjson.loads, event_from_record
    for number, line in iter_lines(stream):
        try:
            record = loads(line)
        except orjson.JSONDecodeError:
            yield Rejected(number, "invalid JSON", name)
            continue
        yield mapper(record, line=number, name=name)


def parse(stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]:
    """Parse a CloudTrail file: a ``Records`` array (streamed) or one record per line."""
    del options
    head = stream.peek(256)[:256] if hasattr(stream, "peek") else b""
    if _ARRAY_HEAD.match(head):
        # One or several concatenated ``{"Records": [...]}`` documents, streamed.
        yield from _parse_array(stream, name)
        return
    yield from _parse_lines(stream, name)
