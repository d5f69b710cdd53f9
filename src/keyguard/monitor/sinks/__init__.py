"""Alert sinks as URLs (SPEC §4) and the delivery dispatcher."""

from __future__ import annotations

from keyguard.errors import UsageError
from keyguard.monitor.sinks.base import Sink, SinkError, redact_url
from keyguard.monitor.sinks.http import ElasticsearchSink, SlackSink, SplunkSink, WebhookSink
from keyguard.monitor.sinks.smtp import SmtpSink
from keyguard.monitor.sinks.syslog import SyslogSink


def parse_sink(url: str, *, webhook_secret: str | None = None) -> Sink:
    """Build the sink a URL names; a bad URL is a UsageError that never echoes credentials."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        if scheme in ("http", "https"):
            return WebhookSink(url, webhook_secret)
        if scheme in ("slack+https", "slack+http"):
            return SlackSink(url)
        if scheme in ("syslog+udp", "syslog+tcp"):
            return SyslogSink(url)
        if scheme in ("splunk+https", "splunk+http"):
            return SplunkSink(url)
        if scheme in ("elasticsearch+http", "elasticsearch+https"):
            return ElasticsearchSink(url)
        if scheme in ("smtp", "smtps", "smtp+insecure"):
            return SmtpSink(url)
    except SinkError as exc:
        raise UsageError(f"invalid sink {redact_url(url)}: {exc.message}") from None
    except ValueError:
        raise UsageError(f"invalid sink {redact_url(url)}") from None
    raise UsageError(
        f"unknown sink scheme {scheme!r}",
        hint="http(s), slack+https, syslog+udp/tcp, splunk+https, elasticsearch+http(s), smtp, smtps, smtp+insecure",
    )


__all__ = ["Sink", "SinkError", "parse_sink", "redact_url"]
