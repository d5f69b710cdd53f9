"""Scanner accuracy on a generated, labelled corpus: recall and precision per rule family
(one family per catalog file) and overall, for keyguard and the competitors, on files and
on git history (secrets committed, then deleted).

Planted secrets are every rule's true-positive templates expanded with fresh randomness,
inside secret-free real code (lines of CPython's standard library); hard negatives are the
rules' false-positive examples plus placeholders, templating, hashes, UUIDs and public keys.

    .venv/bin/python bench/scan_accuracy.py [--corpus first|second|contexts ...] [--tool T ...]

The second corpus (bench/corpus2/, issue 14) has its own generator and labels; there a
credential reported more than once (on distinct lines of one plant) counts the extra
findings against precision, for every tool alike.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from keyguard.scan.catalog import load_rules
from keyguard.scan.generate import expand

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan_common import KEYGUARD, PYENV, WORK, ensure_competitors, measure  # noqa: E402
from scan_contexts import CONTEXTS, NEGATIVES  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus2"))
import build as corpus2  # noqa: E402

# outside any git work tree, so that no tool applies this repository's .gitignore
OUTSIDE = Path(tempfile.gettempdir()) / "keyguard-scan-accuracy"

PLANTS_PER_TEMPLATE = 2
EXTENSIONS = (".env", ".py", ".yaml", ".sh", ".json", ".ts", ".tf")
_RISKY = re.compile(r"(?i)pass|secret|token|key|auth|cred|http|://|@|[A-Za-z0-9+/=_-]{20,}")
HARD_NEGATIVES = (
    "API_KEY=your_api_key_here",
    "password: changeme",
    "AWS_SECRET_ACCESS_KEY=<secret>",
    'token = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    "client_secret = ${CLIENT_SECRET}",
    'password: "{{ .Values.db.password }}"',
    'api_key = os.environ["API_KEY"]',
    "const token = process.env.GITHUB_TOKEN;",
    'secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>',
    'checksum = "{gen:[0-9a-f]*64}"',
    "md5 = '{gen:[0-9a-f]*32}'",
    '"integrity": "sha512-{gen:[A-Za-z0-9+/]*86}=="',
    "commit {gen:[0-9a-f]*40}",
    'request_id = "{gen:[0-9a-f]*8}-{gen:[0-9a-f]*4}-4{gen:[0-9a-f]*3}-a{gen:[0-9a-f]*3}-{gen:[0-9a-f]*12}"',
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{gen:[A-Za-z0-9+/]*43} deploy@ci",
    "{pem:PUBLIC KEY}",
    "{pem:CERTIFICATE}",
    'password = getpass.getpass("Password: ")',
    'token = request.headers.get("Authorization")',
    "PASSWORD_MIN_LENGTH = 12",
)


@dataclass(frozen=True)
class Label:
    path: str
    start: int
    end: int
    family: str
    rule: str


def _filler(rng: random.Random) -> list[str]:
    roots = sorted(PYENV.glob("3.11.*/lib/python3.11"))
    lines: list[str] = []
    for path in sorted(roots[0].glob("*.py"))[:120] if roots else []:
        for line in path.read_text("utf-8", "replace").splitlines():
            if line.strip() and not _RISKY.search(line) and len(line) < 100:
                lines.append(line)
    rng.shuffle(lines)
    return lines or ["x = 1"]


def build_corpus(root: Path, seed: int = 20261128) -> tuple[list[Label], dict[str, list[str]]]:
    """Write the corpus under ``root``; return the planted labels and per-family files."""
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    filler = _filler(rng)
    labels: list[Label] = []
    positives: dict[str, list[str]] = defaultdict(list)
    by_family = defaultdict(list)
    for rule in load_rules():
        by_family[rule.family].append(rule)
    for family, rules in sorted(by_family.items()):
        folder = root / family
        folder.mkdir(parents=True)
        plants = [(rule, t) for rule in rules for t in rule.true_positives for _ in range(PLANTS_PER_TEMPLATE)]
        rng.shuffle(plants)
        for index in range(0, len(plants), 6):
            ext = EXTENSIONS[(index // 6) % len(EXTENSIONS)]
            rel = f"{family}/leak_{index // 6}{ext}"
            out: list[str] = []
            for rule, template in plants[index : index + 6]:
                out.extend(rng.sample(filler, rng.randint(2, 6)))
                text = expand(template, rng).splitlines()
                start = len(out) + 1
                out.extend(text)
                labels.append(Label(rel, start, start + len(text) - 1, family, rule.id))
                out.extend(rng.sample(filler, rng.randint(2, 6)))
            (root / rel).write_text("\n".join(out) + "\n")
            positives[family].append(rel)
        negatives: list[str] = []
        for rule in rules:
            for template in rule.false_positives:
                negatives.extend(rng.sample(filler, 2))
                negatives.extend(expand(template, rng).splitlines())
        for template in HARD_NEGATIVES:
            negatives.extend(rng.sample(filler, 2))
            negatives.extend(expand(template, rng).splitlines())
        (root / family / "clean.txt").write_text("\n".join(negatives) + "\n")
    return labels, positives


def build_contexts(root: Path, seed: int = 7) -> list[Label]:
    """Independent realistic contexts (bench/scan_contexts.py), a few copies each."""
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    labels: list[Label] = []
    for copy in range(3):
        for index, (family, name, template) in enumerate(CONTEXTS):
            rel = f"{family}/c{copy}_{index}_{name}"
            (root / family).mkdir(parents=True, exist_ok=True)
            lines = expand(template, rng).splitlines()
            out: list[str] = []
            start = None
            for number, line in enumerate(lines, 1):
                marked = line.startswith("§")
                out.append(line[1:] if marked else line)
                if marked and start is None:
                    start = number
                if start is not None and (not marked or number == len(lines)):
                    end = number if marked else number - 1
                    labels.append(Label(rel, start, end, family, "context"))
                    start = None
            (root / rel).write_text("\n".join(out) + "\n")
        negatives = [expand(t, rng) for t in NEGATIVES]
        (root / "negatives").mkdir(exist_ok=True)
        (root / "negatives" / f"n{copy}.txt").write_text("\n".join(negatives) + "\n")
    return labels


def build_history(corpus: Path, positives: dict[str, list[str]], target: Path) -> None:
    """Commit the corpus, then delete every file holding a planted secret."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(corpus, target)
    env = ["-c", "user.name=Bench Bot", "-c", "user.email=bench@corp.test"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(target), *env, "commit", "-q", "-m", "add"], check=True)
    for files in positives.values():
        for rel in files:
            (target / rel).unlink()
    subprocess.run(["git", "-C", str(target), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(target), *env, "commit", "-q", "-m", "remove"], check=True)


def findings_of(tool: str, out: Path, root: Path) -> set[tuple[str, int]]:
    """``(relative path, line)`` of every finding a tool wrote to ``out``."""
    text = out.read_text() if out.exists() else ""
    document = json.loads(text) if text.strip() else []
    if tool != "keyguard" and not isinstance(document, dict):
        document = {"findings": [], "results": {}}
    pairs: list[tuple[str, int]] = []
    if tool == "keyguard":
        pairs = [(r["file"], r["line"]) for r in document]
    elif tool == "betterleaks":
        pairs = [(f["location"]["path"], f["location"]["start_line"]) for f in document.get("findings") or []]
    elif tool == "kingfisher":
        pairs = [(f["finding"]["path"], f["finding"]["line"]) for f in document.get("findings") or []]
    elif tool == "detect-secrets":
        pairs = [(path, item["line_number"]) for path, items in document["results"].items() for item in items]
    prefix = str(root.resolve()) + "/"
    result = set()
    for path, line in pairs:
        path = str(path)
        path = path[len(prefix) :] if path.startswith(prefix) else path
        path = path.removeprefix("./")
        result.add((path, int(line)))
    return result


def score(found: set[tuple[str, int]], labels: list[Label]) -> dict[str, list[int]]:
    """Per family ``[true positives, planted, findings on plants, findings elsewhere]``."""
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_path: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_path[label.path].append(label)
        stats[label.family][1] += 1
    hit: set[Label] = set()
    for path, line in found:
        family = path.split("/", 1)[0]
        match = next((lb for lb in by_path.get(path, []) if lb.start <= line <= lb.end), None)
        if match is None:
            stats[family][3] += 1
        else:
            stats[family][2] += 1
            hit.add(match)
    for label in hit:
        stats[label.family][0] += 1
    return stats


def score_once(found: set[tuple[str, int]], labels: list[Label]) -> dict[str, list[int]]:
    """Like :func:`score`, but a plant found on several distinct lines counts one finding
    on the plant and the others as findings elsewhere (one credential, one report)."""
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_path: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_path[label.path].append(label)
        stats[label.family][1] += 1
    hits: dict[Label, int] = defaultdict(int)
    for path, line in found:
        family = path.split("/", 1)[0]
        match = next((lb for lb in by_path.get(path, []) if lb.start <= line <= lb.end), None)
        if match is None:
            stats[family][3] += 1
        else:
            hits[match] += 1
    for label, count in hits.items():
        stats[label.family][0] += 1
        stats[label.family][2] += 1
        stats[label.family][3] += count - 1
    return stats


def build_second(root: Path) -> tuple[list[Label], dict[str, list[str]]]:
    """The second corpus (bench/corpus2) written under ``root``, as Labels."""
    plants = corpus2.write(root)
    (root / "labels.json").unlink()  # not a file to scan
    labels = [Label(p.path, p.first, p.last, p.family, p.shape) for p in plants]
    positives: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        if label.path not in positives[label.family]:
            positives[label.family].append(label.path)
    return labels, positives


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def report(title: str, results: dict[str, dict[str, list[int]]], families: list[str]) -> None:
    tools = list(results)
    print(f"\n{title}: recall / precision per family")
    print(f"{'family':<18}{'plants':>7}" + "".join(f"{t:>22}" for t in tools))
    totals = {t: [0, 0, 0, 0] for t in tools}
    for family in families:
        row = f"{family:<18}{results[tools[0]][family][1]:>7}"
        for tool in tools:
            tp, n, on, off = results[tool][family]
            totals[tool] = [a + b for a, b in zip(totals[tool], (tp, n, on, off), strict=True)]
            row += f"{_ratio(tp, n):>11.3f} / {_ratio(on, on + off):<8.3f}"
        print(row)
    row = f"{'OVERALL':<18}{totals[tools[0]][1]:>7}"
    for tool in tools:
        tp, n, on, off = totals[tool]
        row += f"{_ratio(tp, n):>11.3f} / {_ratio(on, on + off):<8.3f}"
    print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", choices=["first", "second", "contexts"], default=[])
    parser.add_argument("--tool", action="append", default=[], help="only these tools (default: all)")
    args = parser.parse_args()
    chosen = set(args.corpus or ["first", "second", "contexts"])
    bindir = ensure_competitors()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = OUTSIDE / "corpus"
    labels, positives = build_corpus(corpus)
    history = OUTSIDE / "history"
    build_history(corpus, positives, history)
    families = sorted({label.family for label in labels})
    out = WORK / "accuracy-out.json"
    print(
        f"corpus: {len(labels)} planted secrets in {sum(map(len, positives.values()))} files, "
        f"{len(families)} families; hard negatives in {len(families)} files"
    )
    file_cmds = {
        "keyguard": [str(KEYGUARD), "scan", ".", "-f", "json", "-o", str(out)],
        "betterleaks": [str(bindir / "betterleaks"), "fs", "--no-banner", "-l", "error", "-o", str(out), "."],
        "kingfisher": [
            str(bindir / "kingfisher"),
            "scan",
            "--no-validate",
            "--no-update-check",
            "-q",
            "-f",
            "json",
            "-o",
            str(out),
            "--git-history",
            "none",
            ".",
        ],
        "detect-secrets": [str(bindir / "detect-secrets"), "scan", "--all-files", "."],
    }
    git_cmds = {
        "keyguard": [str(KEYGUARD), "scan", ".", "--git", "-f", "json", "-o", str(out)],
        "betterleaks": [str(bindir / "betterleaks"), "git", "--no-banner", "-l", "error", "-o", str(out), "."],
        "kingfisher": [
            str(bindir / "kingfisher"),
            "scan",
            "--no-validate",
            "--no-update-check",
            "-q",
            "-f",
            "json",
            "-o",
            str(out),
            "--git-history",
            "full",
            ".",
        ],
    }
    contexts = OUTSIDE / "contexts"
    context_labels = build_contexts(contexts)
    context_families = sorted({label.family for label in context_labels} | {"negatives"})
    second = OUTSIDE / "second"
    second_labels, second_positives = build_second(second)
    second_history = OUTSIDE / "second-history"
    build_history(second, second_positives, second_history)
    second_families = sorted({label.family for label in second_labels})
    print(
        f"second corpus (bench/corpus2): {len(second_labels)} credentials in "
        f"{sum(map(len, second_positives.values()))} files, {len(second_families)} families"
    )
    runs = (
        ("first", "files (catalog-derived plants)", file_cmds, corpus, labels, families, score),
        ("first", "git history (committed, then deleted)", git_cmds, history, labels, families, score),
        ("contexts", "independent realistic contexts (files)", file_cmds, contexts, context_labels,
         context_families, score),
        ("second", "second corpus (files)", file_cmds, second, second_labels, second_families, score_once),
        ("second", "second corpus (git history)", git_cmds, second_history, second_labels, second_families,
         score_once),
    )
    for which, title, cmds, root, run_labels, run_families, scorer in runs:
        if which not in chosen:
            continue
        results = {}
        for tool, cmd in cmds.items():
            if args.tool and tool not in args.tool:
                continue
            if out.exists():
                out.unlink()
            stdout = out if tool == "detect-secrets" else None
            measure(cmd, cwd=root, stdout_path=stdout)
            results[tool] = scorer(findings_of(tool, out, root), run_labels)
        report(title, results, run_families)
    print("\ndetect-secrets has no history mode (its history figure is in scan_throughput.py).")


if __name__ == "__main__":
    main()
