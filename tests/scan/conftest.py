"""Fixtures for the scanner tests: a compiled scanner, generated secrets, git repos."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from keyguard.scan.catalog import load_rules
from keyguard.scan.engine import Scanner
from keyguard.scan.generate import expand
from keyguard.scan.model import Finding, Origin


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return Scanner(load_rules())


@pytest.fixture
def gen() -> Callable[[str], str]:
    rng = random.Random(1234)
    return lambda template: expand(template, rng)


def scan_text(scanner: Scanner, text: str, path: str = "f.txt") -> list[Finding]:
    return scanner.scan_bytes(text.encode(), Origin(path))


GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_SYSTEM": os.devnull,
    "GIT_AUTHOR_NAME": "Alice Example",
    "GIT_AUTHOR_EMAIL": "alice@corp.test",
    "GIT_COMMITTER_NAME": "Alice Example",
    "GIT_COMMITTER_EMAIL": "alice@corp.test",
}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **GIT_ENV, **(env or {})}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=full
    ).stdout.strip()


def commit(repo: Path, message: str, when: str, author: str = "Alice Example") -> str:
    email = author.split()[0].lower() + "@corp.test"
    env = {
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
    }
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path
