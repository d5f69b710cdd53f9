"""The command line as a user meets it: outputs, exit codes (SPEC §4), one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def kg(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(KEYGUARD_HOME=str(tmp_path / "home"), KEYGUARD_DATABASE_URL=db_url)
    env.pop("KEYGUARD_TOKEN", None)

    def run(*args: str, stdin: bytes = b"", code: int | None = 0, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        proc = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            input=stdin,
            capture_output=True,
            env={**env, **(extra or {})},
            timeout=120,
        )
        if code is not None:
            assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        if proc.returncode not in (0, 1):
            err = proc.stderr.decode()
            assert err.startswith("keyguard: error: ") and err.count("\n") == 1, err
            assert "Traceback" not in err
        return proc

    run("init")
    return run


def test_roundtrip_and_json(kg) -> None:
    kg("key", "create", "pay", "--tier", "high")
    out = json.loads(kg("encrypt", "--key", "pay", "--json", "--context", '{"t":"a"}', stdin=b"hello").stdout)
    assert set(out) == {"key", "version", "ciphertext"} and out["version"] == 1
    plain = kg("decrypt", "--context", '{"t":"a"}', stdin=out["ciphertext"].encode()).stdout
    assert plain == b"hello"
    dec = json.loads(kg("decrypt", "--json", "--context", '{"t":"a"}', stdin=out["ciphertext"].encode()).stdout)
    assert dec == {"key": "pay", "version": 1, "plaintext_b64": "aGVsbG8="}
    kg("key", "rotate", "pay", "--algorithm", "chacha20-poly1305")
    rewrapped = json.loads(kg("rewrap", "--json", "--context", '{"t":"a"}', stdin=out["ciphertext"].encode()).stdout)
    assert rewrapped["ciphertext"].startswith("kg:v1:pay:2:")


def test_error_paths(kg) -> None:
    kg("key", "create", "pay")
    ct = kg("encrypt", "--key", "pay", stdin=b"x").stdout
    kg("encrypt", "--key", "nope", stdin=b"x", code=4)
    kg("key", "create", "Bad!", code=2)
    kg("key", "create", "k2", "--algorithm", "rot13", code=2)
    kg("decrypt", stdin=b"not a ciphertext", code=2)
    kg("decrypt", stdin=b"kg:v1:pay:1", code=2)
    kg("decrypt", stdin=ct[:-6], code=5)  # truncated
    tampered = ct.decode().strip()
    tampered = tampered[:-3] + ("A" if tampered[-3] != "A" else "B") + tampered[-2:]
    kg("decrypt", stdin=tampered.encode(), code=5)
    kg("decrypt", "--context", '{"a":1}', stdin=ct, code=5)  # wrong context
    kg("decrypt", "--context", "{bad", stdin=ct, code=2)
    kg("key", "compromise", "pay", "--version", "1", code=2)  # no terminal, no --yes
    kg("key", "compromise", "pay", "--version", "1", "--yes")
    err = kg("decrypt", stdin=ct, code=3).stderr.decode()
    assert "version 1 is compromised" in err
    kg("key", "enable", "pay", "--version", "1", code=2)  # compromised is never reversible
    kg("key", "show", "ghost", code=4)


def test_sign_verify_exit_codes(kg) -> None:
    kg("key", "create", "sig", "--purpose", "sign", "--algorithm", "ed25519")
    sig = kg("sign", "--key", "sig", stdin=b"msg").stdout.decode().strip()
    kg("verify", "--key", "sig", "--signature", sig, stdin=b"msg")
    kg("verify", "--key", "sig", "--signature", sig, stdin=b"msh", code=5)
    kg("verify", "--key", "sig", "--signature", "@@@", stdin=b"msg", code=5)


def test_service_token_least_privilege(kg) -> None:
    kg("key", "create", "pay")
    kg("key", "create", "hr")
    kg("client", "create", "billing", "--role", "service", "--grant", "pay:encrypt")
    tok = json.loads(kg("client", "token", "billing", "--json").stdout)
    assert set(tok) == {"token", "expires_at"}
    as_client = {"KEYGUARD_TOKEN": tok["token"]}
    ct = kg("encrypt", "--key", "pay", stdin=b"x", extra=as_client).stdout
    kg("decrypt", stdin=ct, code=3, extra=as_client)
    kg("encrypt", "--key", "hr", stdin=b"x", code=3, extra=as_client)
    kg("client", "create", "x", "--grant", "pay", code=2)
    tail = json.loads(kg("audit", "tail", "--json", "-n", "50").stdout)
    assert tok["token"] not in json.dumps(tail)
    assert any(e["result"] == "denied" and e["actor"] == "billing" for e in tail)
    kg("audit", "verify")


def test_data_register_and_rewrap(kg) -> None:
    kg("key", "create", "pay")
    ct = kg("encrypt", "--key", "pay", stdin=b"dek").stdout
    kg("data", "register", "orders", "--class", "payment", "--records", "5000", stdin=ct)
    kg("key", "rotate", "pay")
    report = json.loads(kg("data", "rewrap", "--key", "pay", "--json").stdout)
    assert report["rewrapped"] == 1 and report["remaining"] == 0
    items = json.loads(kg("data", "list", "--json").stdout)
    assert [(i["name"], i["key"], i["version"]) for i in items] == [("orders", "pay", 2)]


def test_import_and_export_public(kg, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "leaked.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    info = json.loads(
        kg(
            "key",
            "import",
            "legacy",
            "--in",
            str(pem),
            "--purpose",
            "sign",
            "--tier",
            "high",
            "--json",
        ).stdout
    )
    assert info["versions"][0]["algorithm"] == "ec-p256" and info["versions"][0]["origin"] == "imported"
    jwk = json.loads(kg("key", "export-public", "legacy", "--format", "jwk").stdout)
    assert jwk["kty"] == "EC" and "d" not in jwk
    out = kg("key", "export-public", "legacy").stdout
    assert out.startswith(b"-----BEGIN PUBLIC KEY-----")
    kg("key", "import", "x", "--in", str(tmp_path / "missing"), "--purpose", "sign", code=2)


def test_not_initialised(tmp_path: Path) -> None:
    env = dict(os.environ, KEYGUARD_HOME=str(tmp_path / "empty"))
    env.pop("KEYGUARD_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "keyguard", "key", "list"], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 4 and b"keyguard init" in proc.stderr
