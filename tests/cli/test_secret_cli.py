"""``keyguard secret …`` and ``keyguard run`` as a user meets them, on both backends.

The done-when test starts a small Python service with ``keyguard run --secret
DB_PASSWORD=billing-db`` that logs in to PostgreSQL as a throwaway role whose
password is the secret. The shared server on 127.0.0.1:5432 trusts every
login (a wrong password would work too), so the test starts a private cluster
whose TCP logins use SCRAM-SHA-256: a wrong password is refused there, which the
test checks as well.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update

PY = sys.executable


@pytest.fixture
def kg(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(KEYGUARD_HOME=str(tmp_path / "home"), KEYGUARD_DATABASE_URL=db_url)
    for name in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA"):
        env.pop(name, None)

    def run(*args: str, stdin: bytes = b"", code: int | None = 0, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        proc = subprocess.run(
            [PY, "-m", "keyguard", *args], input=stdin, capture_output=True, env={**env, **(extra or {})}, timeout=120
        )
        if code is not None:
            assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        if proc.returncode not in (0, 1) and args[0] != "run":
            err = proc.stderr.decode()
            assert err.startswith("keyguard: error: ") and err.count("\n") == 1, err
        return proc

    run.env = env  # type: ignore[attr-defined]
    run.db_url = db_url  # type: ignore[attr-defined]
    run("init")
    return run


def test_secret_commands(kg) -> None:  # type: ignore[no-untyped-def]
    assert kg("secret", "put", "billing-db", stdin=b"pw-one\n").stdout.decode().startswith("billing-db: version 1")
    assert kg("secret", "get", "billing-db").stdout == b"pw-one"
    kg("secret", "put", "billing-db", "--raw", stdin=b"pw-two\n")
    assert kg("secret", "get", "billing-db").stdout == b"pw-two\n"
    doc = json.loads(kg("secret", "rotate", "billing-db", "--generate", "--json").stdout)
    assert doc == {"name": "billing-db", "version": 3, "generated": True}
    got = json.loads(kg("secret", "get", "billing-db", "--json").stdout)
    assert got["version"] == 3 and len(got["value_b64"]) > 40
    listed = json.loads(kg("secret", "list", "--json").stdout)
    assert [(s["name"], s["latest_version"]) for s in listed] == [("billing-db", 3)]
    assert json.loads(kg("secret", "show", "billing-db", "--json").stdout)["latest_version"] == 3
    kg("secret", "put", "billing-db", "visible-in-argv", stdin=b"x", code=2)  # never a value in argv
    kg("secret", "put", "billing-db", stdin=b"", code=2)
    kg("secret", "get", "nope", code=4)
    kg("secret", "get", "billing-db", "--version", "9", code=4)
    kg("secret", "rotate", "nope", "--generate", code=4)
    refused = kg("secret", "destroy", "billing-db", "--version", "1", code=2)
    assert b"--yes" in refused.stderr
    assert kg("secret", "get", "billing-db", "--version", "1").stdout == b"pw-one"
    kg("secret", "destroy", "billing-db", "--version", "1", "--yes")
    kg("secret", "get", "billing-db", "--version", "1", code=3)
    readers = json.loads(kg("secret", "readers", "billing-db", "--since", "-1h", "--json").stdout)
    assert readers and readers[0]["reads"] >= 4
    assessed = json.loads(kg("secret", "assess", "billing-db", "--exposed-at", "-1h", "--json", code=1).stdout)
    assert assessed["readers"][0]["actor"] == readers[0]["actor"] and assessed["assessment"]["grade"]
    kg("secret", "assess", "nope", "--exposed-at", "-1h", code=4)
    tail = kg("audit", "tail", "--json", "-n", "50").stdout.decode()
    assert "secret.destroy" in tail and "pw-one" not in tail and "pw-two" not in tail


def test_swapped_rows_exit_5(kg) -> None:  # type: ignore[no-untyped-def]
    from keyguard.store.secret_tables import SecretVersionRow

    kg("secret", "put", "a", stdin=b"alpha")
    kg("secret", "put", "b", stdin=b"bravo")
    engine = create_engine(kg.db_url)
    try:
        with engine.begin() as conn:
            rows = {r.name: r.sealed for r in conn.execute(select(SecretVersionRow.name, SecretVersionRow.sealed))}
            conn.execute(update(SecretVersionRow).where(SecretVersionRow.name == "a").values(sealed=rows["b"]))
            conn.execute(update(SecretVersionRow).where(SecretVersionRow.name == "b").values(sealed=rows["a"]))
    finally:
        engine.dispose()
    for name in ("a", "b"):
        failed = kg("secret", "get", name, code=5)
        assert b"does not authenticate" in failed.stderr and b"alpha" not in failed.stderr
    kg("run", "--secret", "A=a", "--", PY, "-c", "print('never')", code=5)


def test_run_puts_values_in_the_environment_only(kg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kg("secret", "put", "billing-db", stdin=b"s3cr3t-value")
    kg("secret", "put", "billing-db", stdin=b"second-value")
    probe = (
        "import os, sys, json;"
        "cmd = open('/proc/self/cmdline','rb').read().decode();"
        "print(json.dumps({'db': os.environ.get('DB_PASSWORD'), 'old': os.environ.get('OLD'),"
        " 'argv': cmd, 'pass': os.environ.get('KEYGUARD_PASSPHRASE'), 'pid': os.getpid()}));"
        "sys.exit(7)"
    )
    proc = kg(
        "run", "--secret", "DB_PASSWORD=billing-db", "-s", "OLD=billing-db@1", "--", PY, "-c", probe,
        code=7, extra={"KEYGUARD_PASSPHRASE": "must-not-pass"},
    )
    seen = json.loads(proc.stdout)
    assert seen["db"] == "second-value" and seen["old"] == "s3cr3t-value"
    assert "value" not in seen["argv"] and seen["pass"] is None
    assert not any(b"second-value" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    kg("client", "create", "billing", "--grant", "secret:billing-db:read")
    token = json.loads(kg("client", "token", "billing", "--json").stdout)["token"]
    shows = "import os; print(os.environ['DB'], os.environ.get('KEYGUARD_TOKEN'))"
    as_client = kg("run", "-s", "DB=billing-db", "--", PY, "-c", shows, extra={"KEYGUARD_TOKEN": token})
    assert as_client.stdout.decode().split() == ["second-value", "None"]
    kg("run", "-s", "DB=other", "--", PY, "-c", "pass", extra={"KEYGUARD_TOKEN": token}, code=3)
    kg("run", "--secret", "X=nope", "--", PY, "-c", "pass", code=4)
    kg("run", "--secret", "bad-env=billing-db", "--", PY, "-c", "pass", code=2)
    kg("run", "--secret", "X=billing-db", "--", "no-such-program-kg", code=2)
    kg("run", "--secret", "X=billing-db", "-s", "X=billing-db", "--", PY, "-c", "pass", code=2)
    reads = {r["actor"]: r for r in json.loads(kg("secret", "readers", "billing-db", "--json").stdout)}
    assert reads["billing"]["reads"] == 1 and reads["billing"]["source_ips"] == ["127.0.0.1"]
    assert [r["versions"] for a, r in reads.items() if a != "billing"] == [[1, 2]]


def test_run_forwards_signals(kg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kg("secret", "put", "svc", stdin=b"v")
    ready = tmp_path / "ready"
    service = (
        "import os, signal, sys, time, pathlib;"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42));"
        f"pathlib.Path({str(ready)!r}).write_text(os.environ['SVC']);"
        "time.sleep(60)"
    )
    proc = subprocess.Popen([PY, "-m", "keyguard", "run", "--secret", "SVC=svc", "--", PY, "-c", service], env=kg.env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
    finally:
        proc.kill()
    assert ready.read_text() == "v"


# ---------------------------------------------------------------- against a running server
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_against_a_server(kg) -> None:  # type: ignore[no-untyped-def]
    import httpx

    kg("secret", "put", "billing-db", stdin=b"from-the-server")
    kg("client", "create", "billing", "--role", "service", "--grant", "secret:billing-db:read")
    token = json.loads(kg("client", "token", "billing", "--json").stdout)["token"]
    port = _free_port()
    server = subprocess.Popen(
        [PY, "-m", "keyguard", "serve", "--port", str(port)],
        env=kg.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        probe = "import os; print(os.environ['DB'], os.environ.get('KG_TOKEN'))"
        out = kg("run", "--server", url, "--token-env", "KG_TOKEN", "-s", "DB=billing-db", "--", PY, "-c", probe,
                 extra={"KG_TOKEN": token}).stdout.decode()
        assert out.strip() == "from-the-server None"
        kg("run", "--server", url, "--token-env", "KG_TOKEN", "-s", "DB=other", "--", PY, "-c", "pass",
           extra={"KG_TOKEN": token}, code=3)  # not granted: refused before it is looked up
        kg("run", "--server", url, "--token-env", "KG_TOKEN", "-s", "DB=billing-db", "--", PY, "-c", "pass",
           extra={"KG_TOKEN": "kgt_wrong"}, code=3)
        kg("run", "--server", url, "-s", "DB=billing-db", "--", PY, "-c", "pass", code=2)
    finally:
        server.terminate()
        server.wait(timeout=20)
    readers = json.loads(kg("secret", "readers", "billing-db", "--json").stdout)
    assert [(r["actor"], r["reads"]) for r in readers] == [("billing", 1)]


# ---------------------------------------------------------------- done when: a service reads its DB password
@pytest.fixture
def scram_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A private PostgreSQL cluster whose TCP logins check passwords (SCRAM-SHA-256)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("PostgreSQL binaries (or root to run them as postgres) are not available")
    bin_dir = bins[-1]
    base = Path(f"/tmp/kg-scram-{secrets.token_hex(4)}")
    base.mkdir(mode=0o700)
    shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(
        [*as_pg, str(bin_dir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "-N"],
        capture_output=True, timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.decode()[-200:]}")
    started = subprocess.run(
        [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-w", "-l", str(base / "log"), "start", "-o",
         f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"],
        capture_output=True, timeout=120,
    )
    try:
        if started.returncode != 0:
            pytest.skip(f"PostgreSQL did not start: {started.stderr.decode()[-200:]}")
        yield port, base
    finally:
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_service_reads_its_database_password_from_a_secret(kg, scram_postgres) -> None:  # type: ignore[no-untyped-def]
    import psycopg
    from psycopg import sql

    port, socket_dir = scram_postgres
    role = f"kg_billing_{secrets.token_hex(4)}"
    kg("secret", "put", "billing-db", stdin=b"placeholder")
    generated = json.loads(kg("secret", "rotate", "billing-db", "--generate", "--show", "--json").stdout)["value"]
    with psycopg.connect(host=str(socket_dir), port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(generated))
        )
    service = (
        "import os, psycopg;"
        f"c = psycopg.connect(host='127.0.0.1', port={port}, user={role!r}, dbname='postgres',"
        " password=os.environ['DB_PASSWORD'], connect_timeout=10);"
        "print(c.execute('select current_user').fetchone()[0])"
    )
    started = kg("run", "--secret", "DB_PASSWORD=billing-db", "--", PY, "-c", service)
    assert started.stdout.decode().strip() == role
    # the check can fail: the first version's value is not the role's password
    wrong = kg("run", "--secret", "DB_PASSWORD=billing-db@1", "--", PY, "-c", service, code=None)
    assert wrong.returncode == 1 and b"password authentication failed" in wrong.stderr
    readers = json.loads(kg("secret", "readers", "billing-db", "--json").stdout)
    assert readers[0]["versions"] == [1, 2]


# ---------------------------------------------------------------- rollout delivers to a secret
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_incident_rollout_updates_a_secret_target(kg) -> None:  # type: ignore[no-untyped-def]
    kg("key", "create", "pay")
    kg("client", "create", "billing", "--grant", "pay:encrypt", "--reference", "secret:billing-config")
    shown = json.loads(kg("client", "list", "--json").stdout)
    assert shown[0]["references"] == ["secret:billing-config"]
    kg("secret", "put", "billing-config", "--raw", stdin=b"PAY_KEY=pay@1\nLOG=info\n")
    kg("incident", "open", "--key", "pay@1", "--exposed-at", "-1h")
    kg("key", "rotate", "pay")
    preview = kg("incident", "rollout", "1", "--update", "--dry-run", "--json", code=None)
    assert preview.returncode in (0, 1), preview.stderr
    assert kg("secret", "get", "billing-config").stdout == b"PAY_KEY=pay@1\nLOG=info\n"
    done = kg("incident", "rollout", "1", "--update", "--json", code=None)
    assert done.returncode in (0, 1), done.stderr  # 1: the consumer has not used the new version yet
    assert json.loads(done.stdout)["diffs"] == ["secret:billing-config: version 1 -> 2 (pay -> version 2)\n"]
    probe = "import os; print(os.environ['CONFIG'])"
    started = kg("run", "--secret", "CONFIG=billing-config", "--", PY, "-c", probe)
    assert started.stdout == b"PAY_KEY=pay@2\nLOG=info\n\n"
    tail = kg("audit", "tail", "--json", "-n", "30").stdout.decode()
    assert "rollout.update" in tail and "secret:billing-config" in tail
