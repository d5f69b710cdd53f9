"""The README's tour runs verbatim: every ``sh`` command of the section, in order, in a fresh home.

Each command runs with bash in a temporary directory (a fresh ``KEYGUARD_HOME``, the
``keyguard`` of this interpreter first on ``PATH``); the environment a command exports
carries over to the next. A command exits 0 unless its line ends with a comment
``# exit N: why`` (``# exit 0,1: why`` where either is right). A few stable fragments
of the output are checked too: the outputs shown in the README are abridged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## A tour of a leaked-key response"
_EXIT = re.compile(r"#\s*exit\s+(\d+(?:\s*,\s*\d+)*)\s*:")

#: Command prefix → fragments its output must contain (stdout and stderr together).
FRAGMENTS: dict[str, tuple[str, ...]] = {
    "keyguard init": ("vault initialised",),
    "keyguard key import": ("payments-db", "imported"),
    "keyguard client create": ("billing",),
    "keyguard client token": ('"token"', '"expires_at"'),
    "keyguard data register cards": ("registered cards",),
    "keyguard scan": ("→ payments-db v1", "incident 1 opened for payments-db v1"),
    "keyguard respond": ("incident 1: contained",),
    "keyguard incident show 1": ("incident 1",),
    "keyguard incident rollout 1": ("billing",),
    "keyguard incident notify 1": ("GDPR",),
    "keyguard incident report 1": ("report written to incident-1-zh.pdf",),
    "keyguard audit verify": ("audit chain intact",),
    "keyguard policy check": ("high-tier-hsm",),
    "keyguard drill run": ("pass",),
}


@dataclass(frozen=True)
class Step:
    """One command of the tour and the exit codes it may end with."""

    command: str
    exits: frozenset[int]


def tour_section(text: str) -> str:
    """The tour section of the README (up to the next heading of the same level)."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def tour_steps(text: str) -> list[Step]:
    """The commands of every ``sh`` block of the tour, continuation lines joined."""
    steps: list[Step] = []
    for block in re.findall(r"^```sh\n(.*?)^```", tour_section(text), flags=re.S | re.M):
        logical = ""
        for line in block.splitlines():
            logical += line[:-1] + " " if line.endswith("\\") else line
            if line.endswith("\\"):
                continue
            command, logical = logical.strip(), ""
            if not command or command.startswith("#"):
                continue
            match = _EXIT.search(command)
            exits = frozenset(int(n) for n in match.group(1).split(",")) if match else frozenset({0})
            steps.append(Step(command, exits))
    return steps


def test_the_tour_is_parsed() -> None:
    steps = tour_steps(README.read_text("utf-8"))
    assert len(steps) >= 15
    assert steps[0].command.startswith("export KEYGUARD_HOME=")
    assert any(s.command.startswith("keyguard scan") and s.exits == {1} for s in steps)
    for prefix in FRAGMENTS:
        assert any(s.command.startswith(prefix) for s in steps), prefix


_RUN = """
set -o pipefail
source "$KG_TOUR_STATE"
{command}
rc=$?
export -p > "$KG_TOUR_STATE"
exit $rc
"""


@pytest.mark.slow
def test_the_readme_tour_runs_verbatim(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    bindir = Path(sys.executable).parent
    if not (bindir / "keyguard").exists():
        pytest.skip(f"no keyguard console script beside {sys.executable} (pip install -e .)")
    work = tmp_path / "tour"
    work.mkdir()
    state = tmp_path / "state.sh"
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{bindir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "KG_TOUR_STATE": str(state),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COLUMNS": "200",  # a wide terminal: table cells unwrapped, so fragments stay whole
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    state.write_text("")
    for step in tour_steps(README.read_text("utf-8")):
        done = subprocess.run(
            ["bash", "-c", _RUN.format(command=step.command)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        output = done.stdout + done.stderr
        assert done.returncode in step.exits, f"{step.command}\nexit {done.returncode}\n{output}"
        for prefix, fragments in FRAGMENTS.items():
            if step.command.startswith(prefix):
                for fragment in fragments:
                    assert fragment in output, f"{step.command}: {fragment!r} not in\n{output}"
    assert (work / "incident-1-zh.pdf").read_bytes().startswith(b"%PDF-")
