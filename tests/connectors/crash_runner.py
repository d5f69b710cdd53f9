"""Run one connector step in a child process and ``kill -9`` it after the Nth call of one client method.

``python crash_runner.py SPEC.json``; SPEC holds the connector table, its environment, the
reference, the checkpoint path, the ciphertexts, and ``crash`` = [client attribute, method, N].
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from keyguard.connectors.config import parse_connector
from keyguard.connectors.refs import parse_ref
from keyguard.connectors.registry import open_connector


class _KillAfter:
    """A client whose ``method`` kills the process (SIGKILL) right after its Nth call returns."""

    def __init__(self, inner: Any, method: str, after: int) -> None:
        self._inner, self._method, self._left = inner, method, after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._left -= 1
            if self._left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapped


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    config = parse_connector(spec["name"], spec["table"])
    ref = parse_ref(spec["ref"])
    adapter = open_connector(config, environ=spec["env"]).adapter(ref.kind)
    attribute, method, after = spec["crash"]
    setattr(adapter, attribute, _KillAfter(getattr(adapter, attribute), method, int(after)))
    adapter.rotate(ref, ciphertexts=spec.get("ciphertexts", []), checkpoint=Path(spec["checkpoint"]))
    print("finished without the crash")


if __name__ == "__main__":
    main()
