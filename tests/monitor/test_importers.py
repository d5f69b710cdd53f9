"""Each importer on small inputs: mapping, rejections with line numbers, no raw secrets."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from keyguard.errors import UsageError
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers import ImportOptions, Rejected, get_importer
from keyguard.monitor.ingest import parse_target


def _parse(fmt: str, data: bytes, options: ImportOptions | None = None) -> list[object]:
    stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    return list(get_importer(fmt)(stream, name="t", options=options or ImportOptions()))


def _ct_record(i: int, **over: object) -> dict[str, object]:
    record: dict[str, object] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::123456789012:user/app",
            "accessKeyId": "AKIAEXAMPLEEXAMPLE01",
        },
        "eventTime": f"2026-01-05T10:{i % 60:02d}:00Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-sdk-go/1.44",
        "requestParameters": {"keyId": "arn:aws:kms:eu-west-1:123456789012:key/k-1"},
        "requestID": f"req-{i}",
        "eventID": f"evt-{i}",
    }
    record.update(over)
    return record


def test_jsonl_maps_and_rejects_with_line_numbers() -> None:
    lines = [
        json.dumps(
            {
                "ts": "2026-01-05T10:00:00Z",
                "op": "decrypt",
                "result": "ok",
                "key": "pay",
                "version": 1,
            }
        ),
        "{not json",
        json.dumps({"ts": "2026-01-05T10:00:01Z", "op": "decrypt", "result": "maybe"}),
        "",
        json.dumps({"ts": "2026-01-05T10:00:02.123456789+02:00", "op": "encrypt", "result": "denied"}),
    ]
    out = _parse("jsonl", "\n".join(lines).encode())
    assert isinstance(out[0], MonitorEvent) and out[0].key == "pay" and out[0].source_line == 1
    assert isinstance(out[1], Rejected) and out[1].source_line == 2
    assert isinstance(out[2], Rejected) and out[2].source_line == 3
    assert isinstance(out[3], MonitorEvent) and out[3].source_line == 5
    assert out[3].ts == "2026-01-05T08:00:02.123456Z"


def test_cloudtrail_kms_and_access_key_and_errors() -> None:
    records = [
        _ct_record(1),
        _ct_record(2, eventSource="s3.amazonaws.com", eventName="GetObject", requestParameters={}),
        _ct_record(3, errorCode="AccessDenied", errorMessage="User is not authorized"),
        _ct_record(4, errorCode="KMSInvalidStateException", errorMessage="key is disabled"),
        _ct_record(5, errorCode="ThrottlingException"),
        {"eventName": "Decrypt"},
    ]
    out = _parse("cloudtrail", json.dumps({"Records": records}).encode())
    events = [e for e in out if isinstance(e, MonitorEvent)]
    assert events[0].key == "arn:aws:kms:eu-west-1:123456789012:key/k-1"
    assert events[0].op == "decrypt" and events[0].result == "ok"
    assert events[0].actor == "arn:aws:iam::123456789012:user/app"
    assert events[0].source_ip == "203.0.113.10" and events[0].user_agent == "aws-sdk-go/1.44"
    assert events[1].key == "AKIAEXAMPLEEXAMPLE01" and events[1].op == "get-object"
    assert [e.result for e in events[2:]] == ["denied", "denied", "error"]
    assert isinstance(out[-1], Rejected) and out[-1].source_line == 6


def test_cloudtrail_lines_gzip_and_directory(tmp_path: Path) -> None:
    (tmp_path / "a.json.gz").write_bytes(
        gzip.compress(json.dumps({"Records": [_ct_record(i) for i in range(3)]}, indent=1).encode())
    )
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(_ct_record(i)) for i in range(3, 6)) + "\nnot json\n")
    out = list(parse_target(str(tmp_path), "cloudtrail", ImportOptions()))
    events = [e for e in out if isinstance(e, MonitorEvent)]
    assert [e.request_id for e in events] == [f"req-{i}" for i in range(6)]
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert len(rejected) == 1 and rejected[0].source_line == 4
    assert rejected[0].source_file is not None and rejected[0].source_file.endswith("b.jsonl")


def test_cloudtrail_truncated_array_reports_and_keeps_earlier_records() -> None:
    data = json.dumps({"Records": [_ct_record(i) for i in range(3)]}).encode()[:-40]
    out = _parse("cloudtrail", data)
    assert sum(isinstance(e, MonitorEvent) for e in out) == 2
    assert isinstance(out[-1], Rejected)


def test_vault_audit_pairs_request_and_response() -> None:
    def entry(kind: str, rid: str, path: str, **extra: object) -> str:
        body: dict[str, object] = {
            "time": "2026-01-05T10:00:00.123456789Z",
            "type": kind,
            "auth": {"accessor": "hmac-sha256:abc", "display_name": "token"},
            "request": {
                "id": rid,
                "operation": "update",
                "mount_point": "transit/",
                "mount_type": "transit",
                "path": path,
                "remote_address": "198.51.100.3",
                "headers": {"user-agent": ["app/2"]},
            },
        }
        body.update(extra)
        return json.dumps(body)

    lines = [
        entry("request", "r1", "transit/encrypt/pay"),
        entry("request", "r2", "transit/decrypt/pay"),
        entry("response", "r1", "transit/encrypt/pay", response={"data": {"key_version": 2}}),
        entry(
            "response",
            "r2",
            "transit/decrypt/pay",
            error="1 error occurred:\n\t* permission denied\n\n",
        ),
        "garbage",
        entry("request", "r3", "transit/datakey/plaintext/pay"),
    ]
    out = _parse("vault-audit", "\n".join(lines).encode())
    events = [e for e in out if isinstance(e, MonitorEvent)]
    assert [(e.op, e.key, e.result, e.source_line) for e in events] == [
        ("encrypt", "pay", "ok", 1),
        ("decrypt", "pay", "denied", 2),
        ("generate-data-key", "pay", "ok", 6),
    ]
    assert events[0].version == 2 and events[0].actor == "hmac-sha256:abc"
    assert events[0].source_ip == "198.51.100.3" and events[0].user_agent == "app/2"
    assert [r.source_line for r in out if isinstance(r, Rejected)] == [5]


def test_csv_with_column_mapping() -> None:
    data = (
        b"When,Who,IP,Action,Key,Ver,Outcome\n"
        b"2026-01-05T10:00:00Z,alice,203.0.113.1,decrypt,pay,1,success\n"
        b"2026-01-05T10:00:01Z,bob,203.0.113.2,encrypt,pay,x,ok\n"
        b"2026-01-05T10:00:02Z,bob,203.0.113.2,encrypt,pay,2,403\n"
    )
    options = ImportOptions(
        column_map={
            "ts": "When",
            "actor": "Who",
            "source_ip": "IP",
            "op": "Action",
            "key": "Key",
            "version": "Ver",
            "result": "Outcome",
        }
    )
    out = _parse("csv", data, options)
    assert isinstance(out[0], MonitorEvent) and out[0].result == "ok" and out[0].version == 1
    assert isinstance(out[1], Rejected) and out[1].source_line == 3
    assert isinstance(out[2], MonitorEvent) and out[2].result == "denied"


def test_csv_without_required_columns_is_rejected() -> None:
    out = _parse("csv", b"a,b\n1,2\n")
    assert len(out) == 1 and isinstance(out[0], Rejected)


SECRET = "sk_live_leakedvalue123"


def test_combined_query_credential_is_fingerprinted() -> None:
    lines = [
        f'203.0.113.9 - - [05/Jan/2026:10:00:00 +0100] "GET /v1/charge?api_key={SECRET}&x=1 '
        'HTTP/1.1" 200 12 "-" "curl/8"',
        f'203.0.113.9 - - [05/Jan/2026:10:00:01 +0100] "GET /v1/charge?api_key={SECRET} HTTP/1.1" 403 12 "-" "curl/8"',
        "this is not a log line",
    ]
    opts = ImportOptions(credential="query:api_key", fingerprint_key=b"k" * 32)
    out = _parse("combined", "\n".join(lines).encode(), opts)
    events = [e for e in out if isinstance(e, MonitorEvent)]
    assert events[0].key is not None and events[0].key.startswith("hmac-sha256:")
    assert events[0].key == events[1].key and events[0].ts == "2026-01-05T09:00:00.000000Z"
    assert [e.result for e in events] == ["ok", "denied"]
    for ev in events:
        assert SECRET not in json.dumps(ev.to_record())
    assert isinstance(out[2], Rejected) and out[2].source_line == 3


def test_combined_header_credential() -> None:
    line = f'198.51.100.1 - - [05/Jan/2026:10:00:00 +0000] "POST /v1/x HTTP/1.1" 201 2 "-" "app/1" "{SECRET}" "req-9"'
    opts = ImportOptions(credential="header:X-Api-Key", extra_fields=["X-Api-Key", "X-Request-Id"])
    (ev,) = _parse("combined", line.encode(), opts)
    assert isinstance(ev, MonitorEvent) and ev.key is not None and SECRET not in ev.key


def test_combined_rule_must_name_a_logged_header() -> None:
    with pytest.raises(UsageError):
        _parse("combined", b"x", ImportOptions(credential="header:X-Api-Key"))


def test_unknown_format() -> None:
    with pytest.raises(UsageError):
        get_importer("xml")


def test_corrupt_gzip_and_bad_dates_do_not_stop_the_import(tmp_path: Path) -> None:
    good = gzip.compress(b"\n".join(json.dumps(_ct_record(i)).encode() for i in range(50)))
    (tmp_path / "a.json.gz").write_bytes(good[: len(good) // 2])  # truncated member
    (tmp_path / "b.jsonl").write_text(
        json.dumps(_ct_record(1, eventTime="2026-13-45T99:00:00Z")) + "\n" + json.dumps(_ct_record(2)) + "\n"
    )
    out = list(parse_target(str(tmp_path), "cloudtrail", ImportOptions()))
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert any("unreadable" in r.reason for r in rejected)
    assert any("invalid timestamp" in r.reason for r in rejected)
    assert isinstance(out[-1], MonitorEvent) and out[-1].request_id == "req-2"


def test_csv_malformed_row_is_rejected() -> None:
    data = b'ts,op\n2026-01-05T10:00:00Z,decrypt\n"unterminated,decrypt\x00\n2026-01-05T10:00:01Z,encrypt\n'
    out = _parse("csv", data)
    assert isinstance(out[0], MonitorEvent)
