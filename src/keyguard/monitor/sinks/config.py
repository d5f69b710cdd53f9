"""The sinks a deployment configured: ``--sink`` URLs plus ``[monitor] sinks`` of keyguard.toml."""

from __future__ import annotations

import tomllib
from typing import Any

from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.monitor.sinks import Sink, parse_sink


def monitor_config(settings: Settings) -> dict[str, Any]:
    """The ``[monitor]`` table of ``$KEYGUARD_HOME/keyguard.toml`` (empty when absent)."""
    path = settings.config_file
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        raise UsageError(f"cannot read {path.name}", hint="check the TOML syntax") from None
    section = data.get("monitor", {})
    return section if isinstance(section, dict) else {}


def build_sinks(urls: list[str], config: dict[str, Any]) -> list[Sink]:
    """Sinks from ``--sink`` URLs plus ``[monitor] sinks`` of keyguard.toml."""
    configured = config.get("sinks", [])
    secret = config.get("webhook_secret")
    all_urls = list(urls) + [str(u) for u in configured if isinstance(u, str)]
    return [parse_sink(u, webhook_secret=str(secret) if secret else None) for u in all_urls]


def configured_sinks(settings: Settings) -> list[Sink]:
    """The sinks of keyguard.toml alone (what unattended work such as the scheduler alerts)."""
    return build_sinks([], monitor_config(settings))
