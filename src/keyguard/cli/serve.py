"""``keyguard serve``: the HTTP API (SPEC §6) under uvicorn (uvloop + httptools).

By default it runs one worker process per core, as OpenBao uses every core: the
audit chain stays single-writer across them (each batch takes an flock beside a
SQLite database, or the head row ``FOR UPDATE`` on PostgreSQL, and extends the
chain from the head it read, in one transaction), and a change made through one
worker reaches the others' caches through the state watcher. A passphrase root
typed at a prompt runs one worker (the workers could not ask for it again).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import typer

from keyguard.cli.output import JsonOption, console, emit
from keyguard.config import Settings
from keyguard.errors import UsageError

if TYPE_CHECKING:
    from keyguard.vault.service import Vault


def _check_proxies(proxies: list[str]) -> None:
    from keyguard.api.deps import parse_networks

    try:
        parse_networks(proxies)
    except ValueError as exc:
        raise UsageError(f"invalid --trusted-proxy: {exc}", hint="an address or CIDR like 10.0.0.0/8") from None


def default_workers(root_kind: str, environ: dict[str, str] | None = None) -> int:
    """One worker per usable core; one when the root is a passphrase that was typed (not in the environment)."""
    env = os.environ if environ is None else environ
    if root_kind == "passphrase" and not env.get("KEYGUARD_PASSPHRASE"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 64))


def _root_kind(vault: Vault) -> str:
    from sqlalchemy import select

    from keyguard.store.tables import RootKey

    with vault.engine.connect() as conn:
        kind = conn.execute(select(RootKey.root_kind).order_by(RootKey.generation.desc()).limit(1)).scalar()
    return str(kind or "")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8787, "--port", min=1, max=65535, help="TCP port."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Worker processes (default: one per core)."
    ),
    trusted_proxy: list[str] = typer.Option(  # noqa: B008
        [],
        "--trusted-proxy",
        help="Address or CIDR whose X-Forwarded-For is believed (repeatable).",
    ),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    scheduler: bool = typer.Option(
        True, "--scheduler/--no-scheduler", help="Expire leases and rotate due keys (one node of a cluster)."
    ),
    metrics_listen: str | None = typer.Option(
        None,
        "--metrics-listen",
        help="Also serve /metrics without a token on HOST:PORT (e.g. 127.0.0.1:9464); single worker only.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run the HTTP API, /metrics (token), /healthz and /.well-known/jwks.json."""
    import uvicorn

    from keyguard.api import balance, metrics_access
    from keyguard.api.app import app_from_env, create_app, freeze_startup
    from keyguard.runtime import open_vault

    _check_proxies(trusted_proxy)
    if metrics_listen is not None:
        metrics_access.parse_listen(metrics_listen)
        if workers is None:
            workers = 1  # the separate listener serves this process's metrics
        elif workers > 1:
            raise UsageError(
                "--metrics-listen serves one process's metrics", hint="use it with --workers 1, or scrape /metrics"
            )
    settings = Settings.from_env()
    # Open the vault first: a wrong root or a missing vault fails now, with its exit code.
    vault = open_vault(settings)
    if workers is None:
        workers = default_workers(_root_kind(vault))
    database = vault.engine.dialect.name
    url = f"http://{host}:{port}"
    document = {
        "url": url,
        "workers": workers,
        "database": database,
        "openapi": f"{url}/openapi.json",
        "scheduler": scheduler,
    }
    if metrics_listen is not None:
        document["metrics"] = f"http://{metrics_listen}/metrics"
    emit(
        document,
        as_json,
        lambda: console.print(
            f"keyguard API on {url} ({workers} worker(s), {database}); OpenAPI at {url}/openapi.json"
        ),
    )
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        # httptools, with each response written in one piece (keyguard.api.wire).
        "http": "keyguard.api.wire:CoalescingHttpToolsProtocol",
        "access_log": access_log,
        "log_level": log_level,
        "timeout_graceful_shutdown": 5,
        # keyguard decides itself whom to believe for X-Forwarded-For (--trusted-proxy).
        "proxy_headers": False,
    }
    if workers == 1:
        app = create_app(settings, vault, trusted_proxies=trusted_proxy, schedule=scheduler)
        freeze_startup()
        listener = metrics_access.start_listener(metrics_listen) if metrics_listen is not None else None
        try:
            uvicorn.run(app, **common)  # type: ignore[arg-type]
        finally:
            if listener is not None:
                listener.shutdown()
            vault.close()
        return
    vault.close()
    vault.engine.dispose()
    os.environ["KEYGUARD_TRUSTED_PROXIES"] = ",".join(trusted_proxy)
    os.environ["KEYGUARD_SCHEDULER"] = "on" if scheduler else "off"
    target = f"{app_from_env.__module__}:app_from_env"
    # The workers spread their connections evenly (keyguard.api.balance) through a private folder.
    folder = tempfile.mkdtemp(prefix="kg-balance-")
    os.environ[balance.ENV] = folder
    try:
        uvicorn.run(target, factory=True, workers=workers, **common)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def register(app: typer.Typer) -> None:
    """Add ``keyguard serve``."""
    app.command("serve")(serve)
