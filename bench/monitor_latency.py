"""Bench: alert latency from an event appended to the store to a local webhook receiving it.

    .venv/bin/python bench/monitor_latency.py [--events 1000] [--db URL] [--interval 0.01]

Appends ``--events`` audit events one by one (one commit each, as the vault does;
on PostgreSQL followed by ``NOTIFY keyguard_audit``), each a refused call on a
compromised version of its own key, so every event raises one new alert. A
``Watcher`` thread (poll 250 ms, LISTEN on PostgreSQL) delivers alerts to a local
JSON webhook; latency = webhook receipt - commit of the event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import insert, text

from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.sinks import parse_sink
from keyguard.monitor.timeutil import format_ts
from keyguard.monitor.watch import Watcher
from keyguard.store.db import create_db_engine, migrate
from keyguard.store.tables import AuditEvent


def main() -> None:
    """Run the bench and print p50 / p99 / max."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()

    received: dict[str, float] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            key = json.loads(body)["alert"]["key"]
            received.setdefault(key, now)
            self.send_response(204)
            self.end_headers()
            if len(received) >= args.events:
                done.set()

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(args.db or f"sqlite:///{tmp}/latency.db")
        migrate(engine)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook#secret=bench"
        dispatcher = Dispatcher(engine, [parse_sink(url)], attempts=3, backoff=0.1)
        watcher = Watcher(engine, dispatcher=dispatcher)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        time.sleep(0.5)

        appended: dict[str, float] = {}
        is_pg = engine.dialect.name == "postgresql"
        for i in range(1, args.events + 1):
            key = f"key-{i:05d}"
            row = {
                "id": i, "ts": format_ts(datetime.now(UTC)),
                "actor": "svc", "source_ip": "10.0.0.1", "user_agent": "app/1", "op": "decrypt",
                "key": key, "version": 1, "result": "denied", "reason": "version 1 is compromised",
                "request_id": f"r{i}", "prev_hash": "0" * 64, "hash": f"{i:064d}",
            }  # fmt: skip
            with engine.begin() as conn:
                conn.execute(insert(AuditEvent), [row])
            appended[key] = time.time()
            if is_pg:
                with engine.begin() as conn:
                    conn.execute(text("SELECT pg_notify('keyguard_audit', :id)"), {"id": str(i)})
            time.sleep(args.interval)
        done.wait(30)
        stop.set()
        thread.join(10)
        dispatcher.close()
        engine.dispose()
    server.shutdown()

    latencies = sorted((received[k] - t) * 1000 for k, t in appended.items() if k in received)
    missing = len(appended) - len(latencies)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"alert latency ({'postgresql' if is_pg else 'sqlite'}, {len(latencies)} alerts, "
        f"{missing} missing): p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
