"""The main job of ``make demo``: a realistic organisation, a leak, and the response.

A fresh embedded home is seeded with keys of every tier and algorithm, clients
with least-privilege grants and the config files where they read key
references, a data inventory, 30 days of normal traffic (imported gateway
logs) and an attacker's traffic after the leak; then ``respond`` runs, a
straggler trips the wire, the rollout rewrites the references, and the
reports are written in English and Chinese.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from keyguard.audit.log import format_ts
from keyguard.crypto import envelope
from keyguard.errors import KeyStateError, UsageError
from keyguard.store.tables import DataItem
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal, local_admin, parse_grants
from keyguard.vault.service import Vault

MARKER = ".keyguard-demo"
LEAKED_KEY = "payments-db"

KEYS: list[dict[str, Any]] = [
    {
        "name": "payments-db",
        "purpose": "encrypt",
        "algorithm": "aes256-gcm",
        "tier": "high",
        "owner": "payments-team",
    },
    {
        "name": "customer-pii",
        "purpose": "encrypt",
        "algorithm": "chacha20-poly1305",
        "tier": "high",
        "owner": "data-platform",
    },
    {
        "name": "api-signing",
        "purpose": "sign",
        "algorithm": "rsa-2048",
        "tier": "high",
        "owner": "identity",
    },
    {
        "name": "session-tokens",
        "purpose": "sign",
        "algorithm": "ed25519",
        "tier": "medium",
        "owner": "identity",
    },
    {
        "name": "webhook-mac",
        "purpose": "mac",
        "algorithm": "hmac-sha256",
        "tier": "medium",
        "owner": "integrations",
    },
    {
        "name": "reports-archive",
        "purpose": "encrypt",
        "algorithm": "rsa-3072",
        "tier": "low",
        "owner": "finance",
    },
    {"name": "edge-tls", "purpose": "sign", "algorithm": "ec-p384", "tier": "high", "owner": "sre"},
]
CLIENTS: list[dict[str, Any]] = [
    {
        "name": "billing-svc",
        "role": "service",
        "grants": ["payments-db:encrypt,decrypt", "webhook-mac:sign,verify"],
        "file": "billing/.env",
        "content": "PAYMENTS_KEY=kg://payments-db/1\nWEBHOOK_KEY=webhook-mac@1\n",
    },
    {
        "name": "checkout-web",
        "role": "service",
        "grants": ["payments-db:decrypt", "session-tokens:sign"],
        "file": "checkout/config.yaml",
        "content": "keys:\n  payments: payments-db@1\n  sessions: session-tokens@1\n",
    },
    {
        "name": "ledger-batch",
        "role": "service",
        "grants": ["payments-db:decrypt,rewrap"],
        "file": "ci/variables.json",
        "content": json.dumps({"variables": {"LEDGER_KEY": "payments-db@1"}}, indent=2) + "\n",
    },
    {
        "name": "crm",
        "role": "service",
        "grants": ["customer-pii:encrypt,decrypt"],
        "file": "crm/settings.toml",
        "content": '[crypto]\nkey = "customer-pii@1"\n',
    },
    {"name": "oncall", "role": "operator", "grants": [], "file": None, "content": ""},
    {"name": "compliance", "role": "auditor", "grants": [], "file": None, "content": ""},
]
INVENTORY: list[tuple[str, str, str, int, int]] = [
    # key, item prefix, class, items, records per item
    ("payments-db", "orders/shard", "payment", 2_000, 1_200),
    ("payments-db", "card-vault/bucket", "payment", 40, 250_000),
    ("payments-db", "refunds/table", "pii", 12, 80_000),
    ("customer-pii", "crm/contacts", "pii", 30, 50_000),
    ("reports-archive", "finance/quarterly", "other", 8, 1),
]
INTERNAL_IPS = ["10.20.1.11", "10.20.1.12", "10.20.2.31", "10.20.2.32", "10.20.3.7"]
ATTACKER_IP = "203.0.113.66"


@dataclass
class DemoResult:
    """Where the demo left things."""

    home: Path
    incident: int
    reports: dict[str, str]
    summary: dict[str, Any]


def _fresh_home(home: Path) -> Path:
    if home.exists():
        if not (home / MARKER).exists() and any(home.iterdir()):
            raise UsageError(f"{home} exists and is not a keyguard demo home", hint="pass --home NEW_DIR")
        shutil.rmtree(home)
    home.mkdir(parents=True, mode=0o700)
    (home / MARKER).write_text("created by keyguard demo; safe to delete\n")
    return home


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def _night_after(start: datetime, end: datetime) -> datetime:
    """The first hour from ``start`` that is night (01–04 UTC) and before ``end``, else ``start``.

    The demo's owners work 07–20 UTC (the off-hours rule's business hours), so the
    attacker shows up where a security engineer would look for one.
    """
    at = start.replace(minute=0, second=0, microsecond=0)
    while at < end:
        if 1 <= at.hour <= 4 and at >= start - timedelta(hours=1):
            return at
        at += timedelta(hours=1)
    return start


def _traffic(now: datetime, exposed_at: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """30 days of office-hours gateway logs, then the attacker (SPEC §5 event shape)."""
    events: list[dict[str, Any]] = []
    start = exposed_at - timedelta(days=30)
    users = [
        ("billing-svc", "billing/3.4.1 (+grpc)", ["encrypt", "decrypt"]),
        ("checkout-web", "checkout-web/2024.11", ["decrypt"]),
        ("ledger-batch", "ledger-batch/1.9", ["decrypt"]),
    ]
    day = start
    while day < now:
        weekday = day.weekday() < 5
        for _ in range(rng.randint(900, 1300) if weekday else rng.randint(150, 300)):
            hour = int(rng.triangular(7, 20, 12))
            at = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
            if at >= now:
                continue
            actor, agent, ops = rng.choice(users)
            events.append(
                {
                    "ts": format_ts(at),
                    "actor": actor,
                    "source_ip": rng.choice(INTERNAL_IPS),
                    "user_agent": agent,
                    "op": rng.choice(ops),
                    "key": LEAKED_KEY,
                    "version": 1,
                    "result": "ok",
                    "reason": None,
                }
            )
        day += timedelta(days=1)
    # The attacker: a burst of decrypts at night from a new network, with the stolen billing token.
    burst = _night_after(exposed_at + timedelta(hours=1), now - timedelta(hours=1)).replace(minute=12, second=0)
    for i in range(420):
        at = burst + timedelta(seconds=i * 0.14)
        events.append(
            {
                "ts": format_ts(at),
                "actor": "billing-svc",
                "source_ip": ATTACKER_IP,
                "user_agent": "python-requests/2.31.0",
                "op": "decrypt",
                "key": LEAKED_KEY,
                "version": 1,
                "result": "ok" if i % 17 else "denied",
                "reason": None if i % 17 else "rate limited",
            }
        )
    for i in range(25):
        at = burst + timedelta(minutes=30, seconds=i * 7)
        events.append(
            {
                "ts": format_ts(at),
                "actor": "unknown-client",
                "source_ip": "198.51.100.23",
                "user_agent": "curl/8.5.0",
                "op": "key.export",
                "key": LEAKED_KEY,
                "version": 1,
                "result": "denied",
                "reason": "permission denied",
            }
        )
    events.sort(key=lambda e: e["ts"])
    for i, e in enumerate(events, 1):
        e["id"] = i
        e["request_id"] = f"gw-{i:08d}"
    return events


def _seed_inventory(vault: Vault, admin: Principal) -> int:
    now = vault.clock.now()
    total = 0
    for key, prefix, data_class, count, records in INVENTORY:
        info = vault.key_info(key)
        active = info.active
        assert active is not None
        loaded = vault.loaded_version(key, active.version, allow_blocked=False)
        rows = []
        for i in range(count):
            ctx = {"item": f"{prefix}-{i:05d}"}
            payload = loaded.encrypt(os.urandom(32), envelope.associated_data(key, active.version, ctx))
            rows.append(
                {
                    "name": f"{prefix}-{i:05d}",
                    "data_class": data_class,
                    "records": records,
                    "key_name": key,
                    "version": active.version,
                    "ciphertext": envelope.Ciphertext(key, active.version, payload).text(),
                    "context": ctx,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with vault.engine.begin() as conn:
            conn.execute(insert(DataItem), rows)
        vault.record(
            admin,
            "data.register",
            "ok",
            key,
            active.version,
            f"{count} {data_class} items ({prefix}-*) bulk-registered",
        )
        total += count
    return total


def run_demo(home: Path, say: Callable[[str], None]) -> DemoResult:
    """Seed, leak, respond; returns where the reports are."""
    from keyguard.config import Settings
    from keyguard.incident.service import IncidentService
    from keyguard.monitor.alerts import list_alert_groups, list_alerts
    from keyguard.monitor.ingest import import_target
    from keyguard.response import rollout
    from keyguard.response.respond import respond, write_reports
    from keyguard.response.tripwire import install_tripwire
    from keyguard.runtime import open_engine
    from keyguard.vault.roots import KeyFileRoot

    home = _fresh_home(home.resolve())
    os.environ["KEYGUARD_HOME"] = str(home)
    os.environ.pop("KEYGUARD_DATABASE_URL", None)
    os.environ.pop("KEYGUARD_TOKEN", None)
    settings = Settings.from_env()
    rng = random.Random(2026)
    engine = open_engine(settings, create=True)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.record(admin, "init", "ok", reason="root keyfile (demo)")
    say(f"home {home}: vault initialised with a key-file root")

    for spec in KEYS:
        vault.create_key(admin, spec["name"], spec["purpose"], spec["algorithm"], spec["tier"], spec["owner"])
    say(f"{len(KEYS)} keys created: " + ", ".join(f"{k['name']} ({k['algorithm']}, {k['tier']})" for k in KEYS))

    clients = ClientService(vault)
    tokens: dict[str, str] = {}
    for spec in CLIENTS:
        refs = []
        if spec["file"]:
            path = home / "apps" / spec["file"]
            _write(path, spec["content"])
            refs.append(str(path))
        clients.create(admin, spec["name"], spec["role"], parse_grants(spec["grants"]), refs)
        tokens[spec["name"]] = clients.issue_token(admin, spec["name"])[0]
    say(f"{len(CLIENTS)} clients with least-privilege grants; their config files under {home / 'apps'}")

    items = _seed_inventory(vault, admin)
    say(f"data inventory: {items:,} registered items (payment, pii, other)")

    now = vault.clock.now()
    exposed_at = (now - timedelta(hours=20)).replace(minute=0, second=0, microsecond=0)
    log = home / "logs" / "gateway-audit.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    events = _traffic(now, exposed_at, rng)
    with log.open("w", encoding="utf-8") as handle:
        for e in events:
            handle.write(json.dumps(e, separators=(",", ":")) + "\n")
    stats = import_target(engine, str(log), "jsonl")
    say(
        f"imported {stats.imported:,} gateway events: 30 days of normal use, "
        f"then an attacker after {format_ts(exposed_at)}"
    )
    alerts = list_alerts(engine, status=None, limit=10_000)
    groups = list_alert_groups(engine, status=None, limit=10_000)
    say(
        f"alerts: {len(alerts)} raised, {len(groups)} group(s) by rule, key and source "
        "(keyguard alert list --group; keyguard alert ack ID… --group)"
    )

    # Live use through the vault before the response.
    billing = clients.authenticate(tokens["billing-svc"], "10.20.1.11", "billing/3.4.1 (+grpc)")
    old_ciphertext, _ = vault.encrypt(billing, LEAKED_KEY, b"order 1142: card ending 4242")

    incidents = IncidentService(engine, vault.clock)
    install_tripwire(vault, incidents)
    say(f"leak: {LEAKED_KEY} v1 was committed to a public repository; responding …")
    result = respond(
        vault,
        incidents,
        admin,
        [(LEAKED_KEY, 1)],
        exposed_at,
        detected_at=now,
        jurisdictions=["eu", "cn"],
        source="secret committed to git (demo)",
        report_dir=None,
        on_step=lambda m: say(f"  respond: {m}"),
    )
    say(
        f"incident {result.incident}: contained in {result.contained_seconds} s, risk {result.grade}, "
        f"{result.rewrapped:,} items re-wrapped to v{result.rotated[0]['version']}"
    )

    # After the rotation: billing switches, checkout-web is a straggler that trips the wire.
    vault.encrypt(billing, LEAKED_KEY, b"order 1143")
    checkout = clients.authenticate(tokens["checkout-web"], "10.20.2.31", "checkout-web/2024.11")
    try:
        vault.decrypt(checkout, old_ciphertext)
    except KeyStateError as exc:
        say(f"tripwire: checkout-web tried the compromised version and was refused ({exc})")
    statuses = rollout.consumers(vault, LEAKED_KEY)
    say(
        "rollout: "
        + ", ".join(f"{s.client} {s.status}" for s in statuses)
        + f" ({rollout.percent_done(statuses)}% switched)"
    )
    active = vault.key_info(LEAKED_KEY).active
    assert active is not None
    for s in statuses:
        for path in s.references:
            allowed = rollout.RolloutPolicy(roots=(home / "apps",))
            if rollout.update_references(Path(path), LEAKED_KEY, active.version, vault.clock.now(), policy=allowed):
                vault.record(admin, "rollout.update", "ok", LEAKED_KEY, active.version, f"{s.client}: {path}")
                say(f"  updated {path} to {LEAKED_KEY}@{active.version} (backup kept)")
    incidents.update_facts(
        result.incident,
        root_cause="A developer committed the billing service's .env with the "
        "payments-db key to a public repository; it was scraped within the hour.",
    )
    reports = write_reports(incidents, result.incident, home / "reports", ("md", "html", "pdf"))
    summary = result.to_dict()
    summary["home"] = str(home)
    summary["reports"] = reports
    return DemoResult(home, result.incident, reports, summary)
