"""The dashboard of ``keyguard serve`` (SPEC §6): ``include(app)`` adds it to the API app."""

from __future__ import annotations

from keyguard.web.routes import include, router

__all__ = ["include", "router"]
