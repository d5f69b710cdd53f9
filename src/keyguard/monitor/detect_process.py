"""Detection in a second process, for bulk imports.

Detection is Python and holds the interpreter lock; parsing and storing are DuckDB
and release it. On a big import the two compete for the lock in one process, so
the importer hands each stored segment's Parquet file to a detection process of
its own. That process reads the file with DuckDB where it lies, runs the rules
(:meth:`DetectionEngine.process_columns`), saves alerts, and at the end saves the
detector's state, exactly as the in-process path does. At most :data:`IN_FLIGHT`
segments wait for it, so scratch files stay few. It is a plain child process of the
same interpreter (``python -m``), talking JSON lines over its stdin and stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from keyguard.errors import KeyguardError

IN_FLIGHT = 4


def _serve(requests: IO[str], answers: IO[str]) -> None:
    """The detection process: detect on each Parquet file received; answer with the alerts raised.

    One JSON object per line both ways: first ``{"url", "rules", "pending"}``, then ``{"file",
    "segment"}`` per segment and ``{"finish": true}``; answers ``ready`` and
    ``batch`` (with the alerts raised), ``done`` or ``error``.
    """

    def answer(kind: str, value: object = 0) -> None:
        answers.write(json.dumps({kind: value}) + "\n")
        answers.flush()

    try:
        from keyguard.monitor.detector_state import load_detector, save_detector
        from keyguard.monitor.pipeline import detect_columns, detect_stored, fresh_columns
        from keyguard.monitor.segments import Workspace, parquet_view
        from keyguard.store.db import create_db_engine

        start = json.loads(requests.readline())
        engine = create_db_engine(start["url"])
        rules = start["rules"]
        detector = load_detector(engine, [Path(r) for r in rules] if rules is not None else None)
        # An import that stopped early left events to detect: those first, before this import's.
        seen, caught_up = detect_stored(engine, detector, [int(i) for i in start["pending"]])
        answer("ready", caught_up)
        with Workspace(threads=1) as ws:
            while "file" in (request := json.loads(requests.readline() or '{"finish": true}')):
                parquet_view(ws, Path(request["file"]), "kg_detect")  # read where it is, no copy
                alerts = detect_columns(engine, detector, fresh_columns(ws.con, "kg_detect"))
                ws.con.execute("DROP VIEW kg_detect")
                Path(request["file"]).unlink(missing_ok=True)
                seen.append(int(request["segment"]))
                answer("batch", alerts)
        save_detector(engine, detector, seen)
        engine.dispose()
        answer("done")
    except BaseException as exc:  # noqa: BLE001 - reported to the importer, which raises it
        answer("error", str(exc.args[0]) if isinstance(exc, KeyguardError) and exc.args else type(exc).__name__)


class DetectionProcess:
    """The importer's side of the detection process (``python -m keyguard.monitor.detect_process``)."""

    def __init__(self, url: str, rules: list[Path] | None, pending: list[int]) -> None:
        """Start the process; it first detects the stored segments ``pending`` (see ``segments.undetected``)."""
        self._process = subprocess.Popen(  # noqa: S603 - our own module, under this interpreter
            [sys.executable, "-m", "keyguard.monitor.detect_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._waiting = 0
        self._started = False
        self.alerts = 0
        self._send({"url": url, "rules": [str(r) for r in rules] if rules is not None else None, "pending": pending})

    def _start(self) -> None:
        """Wait for the process to have loaded the detector (it starts while the import parses)."""
        if not self._started:
            self._expect("ready")
            self._started = True

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise KeyguardError("the detection process stopped unexpectedly") from None

    def _expect(self, *kinds: str) -> None:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise KeyguardError("the detection process stopped unexpectedly")
        ((kind, value),) = json.loads(line).items()
        if kind == "error":
            raise KeyguardError(f"detection failed: {value}")
        if kind not in kinds:
            raise KeyguardError(f"the detection process answered {kind!r}")
        if kind == "batch":
            self._waiting -= 1
        if kind in ("batch", "ready"):
            self.alerts += int(value)

    def submit(self, path: Path, segment_id: int) -> None:
        """Queue stored segment ``segment_id``'s Parquet file (it is deleted once read)."""
        self._start()
        while self._waiting >= IN_FLIGHT:
            self._expect("batch")
        self._send({"file": str(path), "segment": segment_id})
        self._waiting += 1

    def finish(self) -> int:
        """Wait for every queued file and the saved state; return the alerts raised."""
        self._start()
        while self._waiting:
            self._expect("batch")
        self._send({"finish": True})
        self._expect("done")
        self._process.wait(timeout=30)
        return self.alerts

    def close(self) -> None:
        """Stop the process if it still runs (after an error)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    # Answers go to the real stdout; anything else printed goes to stderr.
    _answers = sys.stdout
    sys.stdout = sys.stderr
    _serve(sys.stdin, _answers)
