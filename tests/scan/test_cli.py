"""``keyguard scan`` / ``keyguard rules`` end to end: formats, redaction, exit codes,
baselines, SARIF validity."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from keyguard.cli.main import main

from .conftest import commit

SPEC_FIELDS = [
    "rule",
    "description",
    "severity",
    "file",
    "line",
    "column",
    "commit",
    "author",
    "email",
    "date",
    "secret",
    "fingerprint",
    "entropy",
    "managed_key",
    "resource",
]
SCHEMA = json.loads((Path(__file__).parent / "sarif-2.1.0-subset.schema.json").read_text())


@pytest.fixture
def leaky(tmp_path: Path, gen: Callable[[str], str]) -> tuple[Path, str]:
    token = gen("{crc:ghp}")
    (tmp_path / "app.py").write_text(f"import os\nTOKEN = '{token}'\n")
    (tmp_path / "key.pem").write_text(gen("{pem:EC PRIVATE KEY}") + "\n")
    return tmp_path, token


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_records_are_spec_shaped_and_redacted(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str]) -> None:
    folder, token = leaky
    code, out, _ = run(capsys, "scan", str(folder), "--format", "json")
    assert code == 1
    records = json.loads(out)
    assert [list(r) for r in records] == [SPEC_FIELDS] * 2
    assert token not in out and "PRIVATE KEY" not in out
    assert {r["rule"] for r in records} == {"github-pat", "private-key-sec1-ec"}


def test_show_secrets(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str]) -> None:
    folder, token = leaky
    code, out, _ = run(capsys, "scan", str(folder / "app.py"), "--json", "--show-secrets")
    assert code == 1 and json.loads(out)[0]["secret"] == token


def test_jsonl_and_csv(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str]) -> None:
    folder, _ = leaky
    _, out, _ = run(capsys, "scan", str(folder), "-f", "jsonl")
    assert len([json.loads(line) for line in out.splitlines()]) == 2
    _, out, _ = run(capsys, "scan", str(folder), "-f", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == SPEC_FIELDS and len(rows) == 3


def test_sarif_validates(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str], tmp_path: Path) -> None:
    folder, token = leaky
    target = tmp_path / "out.sarif"
    code, out, _ = run(capsys, "scan", str(folder), "-f", "sarif", "-o", str(target))
    assert code == 1 and out == ""
    document = json.loads(target.read_text())
    jsonschema.validate(document, SCHEMA)
    results = document["runs"][0]["results"]
    assert len(results) == 2 and token not in target.read_text()
    pem = next(r for r in results if r["ruleId"] == "private-key-sec1-ec")
    region = pem["locations"][0]["physicalLocation"]["region"]
    assert region["endLine"] > region["startLine"]


def test_sarif_empty_run_validates(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "clean.txt").write_text("nothing here\n")
    code, out, _ = run(capsys, "scan", str(tmp_path), "-f", "sarif")
    assert code == 0
    jsonschema.validate(json.loads(out), SCHEMA)


def test_table_and_clean_exit(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str], tmp_path: Path) -> None:
    folder, token = leaky
    code, out, _ = run(capsys, "scan", str(folder))
    assert code == 1 and "github-pat" in out and token not in out
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("hello\n")
    assert run(capsys, "scan", str(clean))[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "/nonexistent/path"],
        ["scan", ".", "--format", "xml"],
        ["scan", ".", "--git", "--staged"],
        ["scan", ".", "--since", "-2h"],
        ["scan", ".", "--git", "--since", "yesterday-ish"],
        ["scan", ".", "--update-baseline"],
        ["scan", "-", "--git"],
    ],
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and err.startswith("keyguard: error:") and out == ""


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, gen: Callable[[str], str]) -> None:
    token = gen("{crc:ghp}")

    class Stdin:
        buffer = io.BytesIO(f"x = '{token}'\n".encode())

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", Stdin())
    code, out, _ = run(capsys, "scan", "-", "--json")
    assert code == 1 and json.loads(out)[0]["file"] == "-"


def test_baseline_identity_survives_moves(
    capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str], tmp_path: Path
) -> None:
    folder, token = leaky
    baseline = tmp_path / "baseline.json"
    code, _, _ = run(capsys, "scan", str(folder), "--baseline", str(baseline), "--update-baseline")
    assert code == 0 and token not in baseline.read_text()
    assert len(json.loads(baseline.read_text())["findings"]) == 2
    (folder / "app.py").write_text(f"\n\n\n# moved\nTOKEN = '{token}'\n")
    assert run(capsys, "scan", str(folder), "--baseline", str(baseline))[0] == 0
    (folder / "new.py").write_text(f"T = '{token}'\n")
    code, out, _ = run(capsys, "scan", str(folder), "--baseline", str(baseline), "--json")
    assert code == 1 and [r["file"].split("/")[-1] for r in json.loads(out)] == ["new.py"]


def test_invalid_baseline(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str], tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("{}")
    assert run(capsys, "scan", str(leaky[0]), "--baseline", str(bad))[0] == 2


def test_keyguard_toml_allowlist(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str]) -> None:
    folder, _ = leaky
    (folder / ".keyguard.toml").write_text("[allowlist]\npaths = ['''\\.pem$''']\n")
    code, out, _ = run(capsys, "scan", str(folder), "--json")
    assert [r["rule"] for r in json.loads(out)] == ["github-pat"]


def test_git_cli(capsys: pytest.CaptureFixture[str], repo: Path, gen: Callable[[str], str]) -> None:
    token = gen("{crc:ghp}")
    (repo / "a.py").write_text(f"T = '{token}'\n")
    sha = commit(repo, "leak", "2024-01-01T00:00:00+00:00", "Eve Leaker")
    (repo / "a.py").write_text("T = None\n")
    commit(repo, "fix", "2024-01-02T00:00:00+00:00")
    code, out, _ = run(capsys, "scan", str(repo), "--git", "--json", "--max-commits", "5", "--since", "2020-01-01")
    records = json.loads(out)
    assert code == 1 and [(r["commit"], r["author"], r["email"]) for r in records] == [
        (sha, "Eve Leaker", "eve@corp.test")
    ]
    assert run(capsys, "scan", str(repo))[0] == 0  # the working tree is clean


def test_git_cli_several_targets_and_not_a_repository(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path, gen: Callable[[str], str]
) -> None:
    """git log of the first target starts before the rules load; the others, and a folder
    that is no repository, are read as before."""
    token = gen("{crc:ghp}")
    (repo / "a.py").write_text(f"T = '{token}'\n")
    commit(repo, "leak", "2024-01-01T00:00:00+00:00")
    code, out, _ = run(capsys, "scan", str(repo), str(repo), "--git", "--json", "--branch", "main")
    assert code == 1 and [(r["rule"], r["file"]) for r in json.loads(out)] == [("github-pat", "a.py")] * 2
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = run(capsys, "scan", str(plain), "--git")
    assert code == 2 and "not a git repository" in err


def test_match_vault_without_vault(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "nowhere"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    code, _, err = run(capsys, "scan", str(tmp_path), "--match-vault")
    assert code == 4 and "the vault is not initialised (run keyguard init)" in err


def test_rules_test_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = tmp_path / "acme.toml"
    good.write_text(
        "[[rule]]\nid = 'acme-token'\ndescription = 'Acme'\n"
        "regex = '''\\b(acme_[a-z0-9]{12})\\b'''\n"
        "keywords = ['acme_']\nexamples.true_positives = ['k = acme_{gen:[a-z0-9]*12}']\n"
        "examples.false_positives = ['acme_<token>']\n"
    )
    code, out, _ = run(capsys, "rules", "test", str(good), "--json")
    assert code == 0 and json.loads(out) == {"rules": 1, "failures": []}
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("{gen:[a-z0-9]*12}", "{gen:[A-Z]*12}"))
    code, out, _ = run(capsys, "rules", "test", str(bad))
    assert code == 1 and "FAIL" in out
    assert run(capsys, "rules", "list", "--json")[0] == 0


def test_module_entry_point(leaky: tuple[Path, str], tmp_path: Path) -> None:
    """``python -m keyguard scan`` (the pre-commit hook's entry) loads neither the vault nor incidents."""
    import subprocess
    import sys

    folder, token = leaky
    probe = (
        "import sys; from keyguard.cli.main import main; code = main(sys.argv[1:]); "
        "sys.stderr.write(' '.join(m for m in sys.modules if m.startswith(('keyguard.vault', 'keyguard.incident')))); "
        "sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe, "scan", str(folder), "--json"], capture_output=True, text=True)
    records = json.loads(done.stdout)
    assert done.returncode == 1 and len(records) == 2 and token not in done.stdout
    assert done.stderr == ""
    missing = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.startswith("keyguard: error: no such file")
    hook = (Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text()
    assert "entry: python -m keyguard scan --staged" in hook


def test_user_rules_from_option_and_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, gen: Callable[[str], str]
) -> None:
    rule = tmp_path / "acme.toml"
    rule.write_text(
        "[[rule]]\nid = 'acme-token'\ndescription = 'Acme'\n"
        "regex = '''\\b(acme_[a-z0-9]{12})\\b'''\n"
        "keywords = ['acme_']\nexamples.true_positives = ['k = acme_{gen:[a-z0-9]*12}']\n"
        "examples.false_positives = ['acme_<token>']\n"
    )
    target = tmp_path / "src"
    target.mkdir()
    (target / "a.py").write_text(gen("K = 'acme_{gen:[a-z0-9]*12}'\n"))
    assert run(capsys, "scan", str(target))[0] == 0
    code, out, _ = run(capsys, "scan", str(target), "--rules", str(rule), "--json")
    assert code == 1 and json.loads(out)[0]["rule"] == "acme-token"
    (target / ".keyguard.toml").write_text(f"[scan]\nrule_files = ['{rule}']\n")
    code, out, _ = run(capsys, "scan", str(target), "--json")
    assert code == 1 and json.loads(out)[0]["rule"] == "acme-token"


def test_table_to_file(capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str], tmp_path: Path) -> None:
    folder, token = leaky
    target = tmp_path / "report.txt"
    assert run(capsys, "scan", str(folder), "-o", str(target))[0] == 1
    text = target.read_text()
    assert "github-pat" in text and token not in text


def test_sarif_parses_with_an_independent_object_model(
    capsys: pytest.CaptureFixture[str], leaky: tuple[Path, str]
) -> None:
    sarif_pydantic = pytest.importorskip("sarif_pydantic")
    _, out, _ = run(capsys, "scan", str(leaky[0]), "-f", "sarif")
    log = sarif_pydantic.Sarif.model_validate(json.loads(out))
    assert log.version == "2.1.0" and len(log.runs[0].results) == 2
    assert {r.rule_id for r in log.runs[0].results} == {"github-pat", "private-key-sec1-ec"}


def test_scan_start_up_path_imports_no_heavy_package(leaky: tuple[Path, str]) -> None:
    """Issue 14: a scan never loads Typer, Rich, pydantic or SQLAlchemy unless it draws a table."""
    import subprocess
    import sys

    folder, _ = leaky
    probe = (
        "import sys; from keyguard.cli.main import main; code = main(sys.argv[1:]); "
        "heavy = ('typer', 'click', 'rich', 'pydantic', 'sqlalchemy', 'multiprocessing'); "
        "sys.stderr.write(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "scan", str(folder), "-f", "json"], capture_output=True, text=True
    )
    assert done.returncode == 1 and len(json.loads(done.stdout)) == 2
    assert done.stderr == ""
    clean = folder / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("nothing\n")
    table = subprocess.run([sys.executable, "-c", probe, "scan", str(clean)], capture_output=True, text=True)
    assert table.returncode == 0 and table.stdout == "No secrets found.\n" and table.stderr == ""


def test_history_scan_start_up_leaves_archive_and_vault_code_unloaded(repo: Path, gen: Callable[[str], str]) -> None:
    """Issue 14: a history scan's serial start-up imports neither the archive readers, nor
    importlib.resources, nor the vault matcher or the example generator, and compiles only
    the regexes of rules whose keywords occur (the catalog was validated by the first run)."""
    import subprocess
    import sys

    (repo / "config.py").write_text(f"TOKEN = '{gen('{crc:ghp}')}'\n")
    commit(repo, "add config", "2024-01-02T10:00:00+00:00")
    probe = (
        "import sys; from keyguard.cli.main import main; code = main(sys.argv[1:]); "
        "from keyguard.scan import catalog; "
        "lazy = ('tarfile', 'zipfile', 'importlib.resources', 'keyguard.scan.managed', 'keyguard.scan.generate'); "
        "compiled = sum(bool(r._compiled) for r in catalog.load_rules()); "
        "sys.stderr.write(' '.join(m for m in lazy if m in sys.modules) + f'|{compiled < 40}'); sys.exit(code)"
    )
    args = [sys.executable, "-c", probe, "scan", "--git", str(repo), "-f", "json"]
    subprocess.run(args, capture_output=True, text=True, check=False)  # validates the catalog once
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and [f["rule"] for f in json.loads(done.stdout)] == ["github-pat"]
    assert done.stderr == "|True"


def test_fast_parser_agrees_or_defers() -> None:
    from keyguard.cli.scan_run import ScanOptions, fast_command, parse_fast

    assert fast_command(["--help"]) is None
    assert parse_fast(["-j", "-1"]) is None  # Typer explains the range
    assert parse_fast(["--max-commits", "0", "--git"]) is None
    assert parse_fast(["--since", "-2h", "--git"]) is None  # argparse reads -2h as an option
    assert parse_fast(["--unknown"]) is None
    assert parse_fast(["--form", "json"]) is None  # no abbreviations (click has none)
    options = parse_fast(["a", "--git", "b", "-f", "sarif", "--rules", "r1.toml", "--rules", "r2.toml", "-j", "2"])
    assert options == ScanOptions(
        paths=["a", "b"], git=True, fmt="sarif", rule_files=[Path("r1.toml"), Path("r2.toml")], jobs=2
    )
