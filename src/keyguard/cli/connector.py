"""``keyguard connector …``: list, check, inventory, identify, add, register (SPEC §7).

Also the helpers ``respond --resource``, ``incident … --resource`` and ``scan --identify``
share: the configured connectors opened with the sealed credentials of this home, and the
responder that runs the playbook steps on them.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import MAX_COUNT, JsonOption, console, emit, local_time
from keyguard.config import Settings
from keyguard.connectors.config import CREDENTIALS, ConnectorConfig, load_connectors, parse_connector
from keyguard.connectors.deliver import is_secret_target, secret_target_name
from keyguard.connectors.errors import ConnectorConfigError, UnknownReferenceError
from keyguard.connectors.refs import KINDS, parse_ref
from keyguard.connectors.registry import Connector, open_connector
from keyguard.connectors.sealed import FILE_NAME, SealedStore
from keyguard.connectors.secret import Secret
from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.store.files import write_atomic

if TYPE_CHECKING:
    from keyguard.response.resource import ResourceResponder
    from keyguard.vault.service import Vault

connector_app = typer.Typer(help="Connectors: keys and credentials held elsewhere (SPEC §7).", no_args_is_help=True)
_SET = re.compile(r"^([a-z_][a-z0-9_]*)=(.*)$", re.S)


def sealed_store(vault: Vault, settings: Settings | None = None) -> SealedStore:
    """The sealed connector values of this home, sealed by ``vault``'s barrier."""
    home = (settings or Settings.from_env()).home
    return SealedStore(home / FILE_NAME, vault.barrier)


def configs(settings: Settings | None = None) -> dict[str, ConnectorConfig]:
    """The ``[connectors.*]`` tables of ``keyguard.toml``."""
    return load_connectors((settings or Settings.from_env()).config_file)


class Opened(AbstractContextManager["Opened"]):
    """Every configured connector, opened; closed on exit."""

    def __init__(self, store: SealedStore | None, settings: Settings | None = None,
                 only: str | None = None) -> None:
        found = configs(settings)
        if only is not None:
            if only not in found:
                raise UnknownReferenceError(f"unknown connector {only!r}",
                                            hint="configured: " + (", ".join(sorted(found)) or "none"))
            found = {only: found[only]}
        self.connectors: dict[str, Connector] = {n: open_connector(c, source=store) for n, c in found.items()}

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for connector in self.connectors.values():
            connector.close()


def responder(vault: Vault, opened: Opened, settings: Settings | None = None) -> ResourceResponder:
    """The playbook runner on the opened connectors, as the calling principal."""
    from keyguard.incident.service import IncidentService
    from keyguard.response.resource import ResourceResponder

    home = (settings or Settings.from_env()).home
    caller = context.principal(vault)
    return ResourceResponder(IncidentService(vault.engine, vault.clock), vault.audit, caller.actor, vault.engine,
                             opened.connectors, sealed_store(vault, settings), home / "connector-state",
                             vault=vault, principal=caller)


@connector_app.command("list")
def list_connectors(as_json: bool = JsonOption) -> None:
    """The configured connectors, their settings and where each credential comes from."""
    found = configs()
    rows: list[dict[str, Any]] = []
    for name, config in found.items():
        creds = {f: f"env {v}" for f, v in sorted(config.secret_env.items())}
        rows.append({"name": name, "type": config.type, "kinds": list(KINDS[config.type]),
                     "settings": dict(sorted(config.settings.items())), "credentials": creds})
    if rows:
        vault = context.vault()
        stored = sealed_store(vault).names()
        for row in rows:
            for f in stored.get(str(row["name"]), []):
                if f in CREDENTIALS[str(row["type"])]:
                    row["credentials"][f] = "sealed"

    def human() -> None:
        if not rows:
            console.print("No connectors configured ([connectors.NAME] in keyguard.toml, or keyguard connector add).")
            return
        table = Table("name", "type", "kinds", "settings", "credentials")
        for row in rows:
            table.add_row(str(row["name"]), str(row["type"]), ", ".join(row["kinds"]),
                          ", ".join(f"{k}={v}" for k, v in row["settings"].items()),
                          ", ".join(f"{k}: {v}" for k, v in row["credentials"].items()))
        console.print(table)

    emit(rows, as_json, human)


@connector_app.command("check")
def check(name: str = typer.Argument(..., help="Connector name."), as_json: bool = JsonOption) -> None:
    """Reachable, and allowed to do what the playbook needs (exit 3 naming a missing permission)."""
    vault = context.vault()
    context.authorize("connector.read")
    with Opened(sealed_store(vault), only=name) as opened:
        report = opened.connectors[name].check()
    doc = {"connector": report.connector, "type": report.type, "reachable": report.is_reachable,
           "identity": report.identity, "problem": report.problem, "missing": list(report.missing),
           "permissions": [{"name": p.name, "allowed": p.is_allowed, "detail": p.detail} for p in report.permissions]}

    def human() -> None:
        console.print(f"[bold]{name}[/bold] ({report.type}): "
                      + ("reachable" if report.is_reachable else "[red]unreachable[/red]")
                      + (f" as {report.identity}" if report.identity else ""))
        table = Table("permission", "allowed", "detail")
        for p in report.permissions:
            mark = "yes" if p.is_allowed else ("[red]NO[/red]" if p.is_allowed is False else "unknown")
            table.add_row(p.name, mark, p.detail)
        console.print(table)

    emit(doc, as_json, human)
    report.raise_for_problem()


@connector_app.command("inventory")
def inventory(name: str = typer.Argument(..., help="Connector name."), as_json: bool = JsonOption) -> None:
    """The credentials and keys the connector sees, with age and last use."""
    vault = context.vault()
    context.authorize("connector.read")
    with Opened(sealed_store(vault), only=name) as opened:
        items = opened.connectors[name].inventory()
    rows = [{"resource": str(i.ref), "status": i.status, "created_at": i.created_at, "last_used_at": i.last_used_at,
             "detail": i.detail} for i in items]

    def human() -> None:
        table = Table("resource", "status", "created", "last used")
        for i in items:
            table.add_row(str(i.ref), i.status, local_time(i.created_at), local_time(i.last_used_at))
        console.print(table)

    emit(rows, as_json, human)


@connector_app.command("identify")
def identify(name: str = typer.Argument(..., help="Connector name."), as_json: bool = JsonOption) -> None:
    """Read a leaked value on stdin and print the resource that owns it (exit 4 when none)."""
    raw = sys.stdin.buffer.read().decode("utf-8", "replace").strip()
    if not raw:
        raise UsageError("no value on stdin", hint="pipe the leaked value: … | keyguard connector identify NAME")
    vault = context.vault()
    context.authorize("connector.read")
    from keyguard.audit.log import EventDraft
    from keyguard.connectors.audited import audit_key

    with Opened(sealed_store(vault), only=name) as opened:
        hits = opened.connectors[name].identify(Secret(raw))
    actor = context.principal(vault).actor
    for hit in hits:
        vault.audit.append(EventDraft(actor=actor, op="connector.identify", result="ok", key=audit_key(hit.ref),
                                      reason=f"{hit.ref}: owner {hit.owner}"))
    if not hits:
        raise NotFoundError(f"no resource of connector {name!r} owns this value",
                            hint="try another connector, or track it as external/RULE/FINGERPRINT")
    doc = [{"resource": str(h.ref), "owner": h.owner, "detail": h.detail} for h in hits]

    def human() -> None:
        for h in hits:
            console.print(f"{h.ref}  (owner {h.owner})")

    emit(doc if len(doc) > 1 else doc[0], as_json, human)


def _toml_value(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return json.dumps(value, ensure_ascii=False)


@connector_app.command("add")
def add(
    name: str = typer.Argument(..., help="Connector name ([a-z0-9][a-z0-9._-]*)."),
    kind: str = typer.Option(..., "--type", "-t", help="aws, vault, postgresql or redis."),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE setting (repeatable)."),
    secret_field: str | None = typer.Option(None, "--secret-stdin", help="Credential field read from stdin."),
    as_json: bool = JsonOption,
) -> None:
    """Add ``[connectors.NAME]`` to keyguard.toml; a credential from stdin is sealed by the root of trust."""
    table: dict[str, str] = {"type": kind}
    for item in sets:
        match = _SET.match(item)
        if match is None:
            raise UsageError(f"invalid --set {item!r}", hint="use KEY=VALUE, e.g. --set url=http://127.0.0.1:8200")
        table[match.group(1)] = match.group(2)
    settings = Settings.from_env()
    existing = configs(settings).get(name)
    reseal = existing is not None and not sets and secret_field is not None and existing.type == kind
    if existing is not None and not reseal:
        raise ConflictError(f"connector {name!r} already exists",
                            hint=f"edit [connectors.{name}] in keyguard.toml, or pass only --type and "
                            "--secret-stdin to store its credential again")
    config = existing if existing is not None else parse_connector(name, table)  # plaintext refused here
    if secret_field is not None and secret_field not in CREDENTIALS[config.type]:
        raise ConnectorConfigError(f"{config.type} has no credential {secret_field!r}",
                                   hint="one of " + ", ".join(sorted(CREDENTIALS[config.type])))
    value = None
    if secret_field is not None:
        value = sys.stdin.buffer.read().decode("utf-8", "replace").strip("\r\n")
        if not value:
            raise UsageError(f"no {secret_field} on stdin", hint="pipe the credential")
    vault = context.vault()
    caller = context.principal(vault)
    with vault.audited(caller, "connector.config", None) as ctx:
        caller.require("connector.config")
        vault.require_mfa(caller, "connector.config")
        if value is not None and secret_field is not None:
            sealed_store(vault, settings).put(name, secret_field, Secret(value))
        path = settings.config_file
        if not reseal:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            lines = [f"[connectors.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            body = (text.rstrip("\n") + "\n\n" if text.strip() else "") + "\n".join(lines) + "\n"
            write_atomic(path, body.encode(), mode=0o600)
        ctx["reason"] = f"connector {name} ({config.type}) {'credential stored again' if reseal else 'added'}" + (
            f", {secret_field} sealed" if secret_field else "")
    doc = {"name": name, "type": config.type, "config": str(path), "sealed": [secret_field] if secret_field else []}
    emit(doc, as_json, lambda: console.print(f"connector {name} ({config.type}) added to {path}"
                                             + (f"; {secret_field} sealed" if secret_field else "")))


@connector_app.command("register")
def register_ciphertext(
    ref: str = typer.Argument(..., help="A kms-key or transit resource, e.g. bao/transit/payments."),
    item: str = typer.Argument(..., help="Data item name (a table, bucket, file …)."),
    data_class: str = typer.Option(..., "--class", help="pii, payment, credentials, secrets or other."),
    records: int = typer.Option(..., "--records", min=0, max=MAX_COUNT, help="How many records it holds."),
    as_json: bool = JsonOption,
) -> None:
    """Register a ciphertext (stdin) made under a KMS or transit key: its rotation re-encrypts it."""
    parsed = parse_ref(ref)
    text = sys.stdin.buffer.read().decode("ascii", "replace")
    vault = context.vault()
    context.authorize("data.register")
    if parsed.connector not in configs():
        raise UnknownReferenceError(f"unknown connector {parsed.connector!r} in {parsed}")
    from keyguard.response.resource_data import register_ciphertext as register

    doc = register(vault.engine, parsed, item, data_class, records, text, vault.clock.now())
    from keyguard.audit.log import EventDraft
    from keyguard.connectors.audited import audit_key

    vault.audit.append(EventDraft(actor=context.principal(vault).actor, op="data.register", result="ok",
                                  key=audit_key(parsed), reason=f"{parsed}: item {item} class {data_class}"))
    emit(doc, as_json, lambda: console.print(f"registered {item} under {parsed}"))


def read_targets(targets: list[Path]) -> list[Path]:
    """``--target FILE`` values, checked against ``[rollout] roots`` of keyguard.toml (``secret:NAME`` aside)."""
    files = [t for t in targets if not is_secret_target(str(t))]
    if not files:
        return []
    from keyguard.response.rollout import RolloutPolicy

    policy = RolloutPolicy.load(Settings.from_env().config_file)
    return [policy.check(Path(str(t)).absolute()) for t in files]


def read_secret_targets(targets: list[Path]) -> list[str]:
    """The secret names of the ``--target secret:NAME`` values."""
    return [secret_target_name(str(t)) for t in targets if is_secret_target(str(t))]


def incident_on_resource(incident_id: int) -> bool:
    """True when incident ``incident_id`` is about a connector resource."""
    from keyguard.response.resource import RESOURCE

    return isinstance(context.incident_service().get(incident_id).impact.get(RESOURCE), str)


def open_resource_incident(resource: str | None, key: list[str], exposed_at: str, detected_at: str | None,
                           source: str, jurisdiction: list[str], flags: list[str], as_json: bool,
                           leaked_stdin: bool = False) -> None:
    """``incident open --resource REF``: the leaked-key playbook on a resource held elsewhere."""
    from keyguard.clock import parse_time

    if resource is None:
        raise UsageError("incident open needs --key NAME or --resource REF", hint="see keyguard incident open --help")
    if key:
        raise UsageError("--key and --resource are exclusive", hint="one incident per resource")
    ref = parse_ref(resource)
    leaked = sys.stdin.buffer.read().decode("utf-8", "replace").strip() if leaked_stdin else ""
    if leaked_stdin and not leaked:
        raise UsageError("no leaked value on stdin", hint="pipe it, or drop --leaked-stdin")
    vault = context.vault()
    with Opened(sealed_store(vault)) as opened:
        runner = responder(vault, opened)
        runner.require(ref)
        now = runner.incidents.clock.now()
        incident = runner.open(ref, parse_time(exposed_at, vault.clock).replace(microsecond=0),
                               detected_at=parse_time(detected_at, vault.clock) if detected_at else None,
                               source=source, jurisdictions=jurisdiction, flags=flags,
                               leaked=Secret(leaked) if leaked else None)
    from keyguard.cli.incident_view import render_incident

    emit(incident.to_dict(now), as_json, lambda: render_incident(incident, now))


def run_resource_step(step: str, incident_id: int | None, resource: str | None, *, yes: bool,
                      targets: list[Path], as_json: bool) -> None:
    """``incident contain|assess|rotate|rollout [ID] --resource REF`` through the resource's connector."""
    from keyguard.cli.output import confirm
    from keyguard.response.resource import find_resource_incident, incident_ref

    files, secrets = read_targets(targets), read_secret_targets(targets)
    context.authorize({"contain": "key.compromise", "rotate": "key.rotate"}.get(step, "incident.write"))
    vault = context.vault()
    with Opened(sealed_store(vault)) as opened:
        runner = responder(vault, opened)
        if incident_id is None:
            ref = parse_ref(str(resource))
            found = find_resource_incident(runner.incidents, ref)
            if found is None:
                raise NotFoundError(f"no open incident on {ref}",
                                    hint=f"keyguard incident open --resource {ref} --exposed-at …")
            incident_id = found.id
        ref = incident_ref(runner.incidents.get(incident_id))
        if resource is not None and parse_ref(resource) != ref:
            raise UsageError(f"incident {incident_id} is about {ref}, not {resource}")
        runner.require(ref)
        if step == "contain":
            confirm(f"Contain {ref} now (deactivate, revoke, cut its sessions)?", yes)
            doc = runner.contain(incident_id)
        elif step == "assess":
            doc = runner.assess(incident_id)
        elif step == "rotate":
            doc = runner.rotate(incident_id)
        else:
            doc = runner.rollout(incident_id, files, secrets=secrets)
    doc = {"incident": incident_id, "step": step, **doc}

    def human() -> None:
        console.print(f"[bold]incident {incident_id}[/bold] {step} {ref}")
        for k, v in doc.items():
            if k not in ("incident", "step", "resource", "assessment"):
                console.print(f"  {k}: {json.dumps(v, default=str)}")

    emit(doc, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the ``connector`` group to ``app``."""
    app.add_typer(connector_app, name="connector")
