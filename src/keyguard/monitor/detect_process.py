"""Detection in a second process, for bulk imports.

Detection is Python and holds the interpreter lock; parsing and storing are DuckDB
and release it. On a big import the two compete for the lock in one process, so
the importer hands each stored segment's Parquet file to a detection process of
its own. That process reads the file with DuckDB where it lies, runs the rules
(:meth:`DetectionEngine.process_columns`), saves alerts, and at the end saves the
detector's state, exactly as the in-process path does. At most :data:`IN_FLIGHT`
segments wait for it, so scratch files stay few; it runs the rules over
:data:`DETECT_BATCH` segments at once (one pass per key over more events: the
detectors' per-key work is paid less often, and the results are the same as segment
after segment). It talks JSON lines over two pipes.

The process is forked from the importer when the importer runs no other thread (it
then has every module loaded already: a fresh interpreter spends most of a second of
CPU importing them), else it is a fresh interpreter (``python -m``). A forked child
never touches what it inherited (it opens its own database engine) and leaves with
``os._exit``, so no inherited connection is closed behind the importer's back.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from keyguard.errors import KeyguardError

#: Segments handed to the process and not answered yet, at most.
IN_FLIGHT = 12
#: Segments detected together (fewer at the end of the import).
DETECT_BATCH = 8


def _serve(requests: IO[str], answers: IO[str]) -> None:
    """The detection process: detect on the Parquet files received; answer with the alerts raised.

    One JSON object per line both ways: first ``{"url", "rules", "pending"}``, then ``{"file",
    "segment"}`` per segment and ``{"finish": true}``; answers ``ready`` and one
    ``batch`` per segment (the alerts raised, on the last of a detected group), ``done`` or ``error``.
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
            finished = False
            while not finished:
                files: list[tuple[Path, int]] = []
                while len(files) < DETECT_BATCH:
                    request = json.loads(requests.readline() or '{"finish": true}')
                    if "file" not in request:
                        finished = True
                        break
                    files.append((Path(request["file"]), int(request["segment"])))
                if not files:
                    break
                parquet_view(ws, [path for path, _ in files], "kg_detect")  # read where they are, no copy
                alerts = detect_columns(engine, detector, fresh_columns(ws.con, "kg_detect"))
                ws.con.execute("DROP VIEW kg_detect")
                for n, (path, segment) in enumerate(files):
                    path.unlink(missing_ok=True)
                    seen.append(segment)
                    answer("batch", alerts if n == len(files) - 1 else 0)
        save_detector(engine, detector, seen)
        engine.dispose()
        answer("done")
    except BaseException as exc:  # noqa: BLE001 - reported to the importer, which raises it
        answer("error", str(exc.args[0]) if isinstance(exc, KeyguardError) and exc.args else type(exc).__name__)


def _fork() -> tuple[int, IO[str], IO[str]] | None:
    """Fork the detection process (pid, its requests, its answers); None where forking is not safe.

    Only a process with a single thread is forked: a lock another thread held at the
    fork would stay taken in the child.
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return None
    to_child, requests = os.pipe()
    answers, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: serve, then leave without running any of the importer's clean-up
        code = 1
        try:
            gc.freeze()  # what it inherited is never collected (nor closed) here
            os.close(requests)
            os.close(answers)
            _serve(os.fdopen(to_child, "r"), os.fdopen(from_child, "w"))
            code = 0
        finally:
            os._exit(code)
    os.close(to_child)
    os.close(from_child)
    return pid, os.fdopen(requests, "w"), os.fdopen(answers, "r")


class DetectionProcess:
    """The importer's side of the detection process (``python -m keyguard.monitor.detect_process``)."""

    def __init__(self, url: str, rules: list[Path] | None, pending: list[int]) -> None:
        """Start the process; it first detects the stored segments ``pending`` (see ``segments.undetected``)."""
        self._process: subprocess.Popen[str] | None = None
        forked = _fork()
        if forked is None:
            self._process = subprocess.Popen(  # noqa: S603 - our own module, under this interpreter
                [sys.executable, "-m", "keyguard.monitor.detect_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            assert self._process.stdin is not None and self._process.stdout is not None
            self._pid, self._requests, self._answers = self._process.pid, self._process.stdin, self._process.stdout
        else:
            self._pid, self._requests, self._answers = forked
        self._exited = False
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
        try:
            self._requests.write(json.dumps(message) + "\n")
            self._requests.flush()
        except BrokenPipeError:
            raise KeyguardError("the detection process stopped unexpectedly") from None

    def _expect(self, *kinds: str) -> None:
        line = self._answers.readline()
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
        self._send({"finish": True})  # the process detects what it holds back for a full group
        while self._waiting:
            self._expect("batch")
        self._expect("done")
        self._wait(30)
        return self.alerts

    def _wait(self, timeout: float) -> None:
        if self._process is not None:
            self._process.wait(timeout=timeout)
        elif not self._exited:
            os.waitpid(self._pid, 0)
        self._exited = True

    def close(self) -> None:
        """Stop the process if it still runs (after an error)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=5)
        elif not self._exited:
            if os.waitpid(self._pid, os.WNOHANG)[0] == 0:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            self._exited = True
        for stream in (self._requests, self._answers):
            stream.close()


if __name__ == "__main__":
    # Answers go to the real stdout; anything else printed goes to stderr.
    _answers = sys.stdout
    sys.stdout = sys.stderr
    _serve(sys.stdin, _answers)
