"""The public API of keyguard.connectors is what __all__ lists, and importing it loads no client library."""

from __future__ import annotations

import subprocess
import sys

import keyguard.connectors as connectors


def test_all_is_sorted_and_importable() -> None:
    assert connectors.__all__ == sorted(connectors.__all__)
    for name in connectors.__all__:
        assert getattr(connectors, name) is not None


def test_client_libraries_load_only_with_their_connector() -> None:
    code = ("import sys, keyguard.connectors; "
            "print(','.join(m for m in ('boto3', 'redis', 'httpx', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
