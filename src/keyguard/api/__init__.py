"""The HTTP API (SPEC §6): ``create_app(settings, vault)`` builds the FastAPI application."""

from __future__ import annotations

from keyguard.api.app import create_app

__all__ = ["create_app"]
