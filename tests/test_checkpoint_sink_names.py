"""A failed checkpoint webhook is named by scheme://host:port and a fingerprint, never its path or query."""

from __future__ import annotations

from keyguard.audit.push import push
from keyguard.audit.sink_names import fingerprint
from keyguard.monitor.sinks.base import reference

URL = "http://127.0.0.1:9/hooks/T0SECRETPATH?token=S3CRETQUERY"


def test_failed_webhook_is_named_by_host_port_and_fingerprint() -> None:
    [failure] = push({"head": "x"}, (URL,))
    assert failure.startswith(f"http://127.0.0.1:9/…#fp={fingerprint(URL)}: ")
    assert "SECRETPATH" not in failure and "S3CRETQUERY" not in failure and "hooks" not in failure
    assert reference(URL) == failure.split(": ")[0]  # the alert sinks name it the same way
