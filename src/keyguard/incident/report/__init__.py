"""Incident reports: plain data in, Markdown / HTML / PDF out."""

from __future__ import annotations

from keyguard.incident.report.data import Anomaly, DataItem, ReportData, UsagePoint
from keyguard.incident.report.render import render_report

__all__ = ["Anomaly", "DataItem", "ReportData", "UsagePoint", "render_report"]
