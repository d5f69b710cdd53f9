"""The argument parser as a user meets it: usage errors, --version, help, an empty home (SPEC §4)."""

from __future__ import annotations

from pathlib import Path

import pytest

import keyguard
from keyguard.cli.main import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("KEYGUARD_TOKEN", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_error_line(err: str) -> str:
    assert err.startswith("keyguard: error: ") and err.count("\n") == 1, err
    assert err.rstrip().endswith(")"), err  # the hint
    assert "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "args",
    [
        ("key", "list", "--bogus"),
        ("key", "show"),
        ("nosuch",),
        ("key",),
        ("key", "create", "x", "--rotation-days", "abc"),
        ("audit", "tail", "-n", "-1"),
        ("key", "disable", "pay", "--version", "99999999999999999999", "--yes"),
        ("key", "compromise", "pay", "--version", "0", "--yes"),
        ("incident", "show", "99999999999999999999"),
        ("data", "rewrap", "--key", "pay", "--batch", "0"),
        ("key", "show", "pay@99999999999999999999"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, args: tuple[str, ...]) -> None:
    assert cli("init")[0] == 0
    assert cli("key", "create", "pay")[0] == 0
    code, _, err = cli(*args)
    assert code == 2, err
    err = _one_error_line(err)
    assert "audit event" not in err and "fail" not in err  # never the fail-closed message


def test_usage_error_names_the_option_and_the_help(cli) -> None:
    code, _, err = cli("key", "list", "--bogus")
    assert code == 2
    assert "--bogus" in err and "keyguard key list --help" in err


def test_version(cli) -> None:
    code, out, _ = cli("--version")
    assert code == 0 and out == f"keyguard {keyguard.__version__}\n"


def test_help_shows_types_not_bool(cli) -> None:
    code, out, _ = cli("key", "create", "--help")
    assert code == 0
    assert "<bool>" not in out
    assert "<int" in out  # --rotation-days still says what it takes
    code, out, _ = cli("--help")
    assert code == 0 and "<bool>" not in out and "--version" in out


@pytest.mark.parametrize(
    "args",
    [("key", "list"), ("audit", "tail"), ("alert", "list"), ("incident", "list"), ("watch", "--once")],
)
def test_empty_home_is_not_created(cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    code, _, err = cli(*args)
    assert code == 4 and "keyguard init" in _one_error_line(err)
    assert not (tmp_path / "home").exists()


def test_empty_postgresql_gets_no_tables(cli, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine, inspect

    monkeypatch.setenv("KEYGUARD_DATABASE_URL", pg_url)
    code, _, err = cli("key", "list")
    assert code == 4 and "keyguard init" in err
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert cli("init")[0] == 0
    assert cli("key", "list")[0] == 0


def test_ciphertext_not_base64url_is_bad_input(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    assert cli("init")[0] == 0
    assert cli("key", "create", "pay")[0] == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"kg:v1:pay:1:@@@")))
    code, _, err = cli("decrypt")
    assert code == 2, err  # not 5: nothing was tampered with, the text is not a ciphertext
    assert "base64url" in _one_error_line(err)


@pytest.mark.parametrize("since", ["-99999999999h", "-99999999999999999999d", "0001-01-01T00:00:00+01:00"])
def test_absurd_times_are_bad_input(cli, since: str) -> None:
    assert cli("init")[0] == 0
    code, _, err = cli("audit", "export", "--since", since)
    assert code == 2, err
    assert "out of range" in _one_error_line(err)
