"""Second accuracy corpus for the scanner (issue 14): files in the shapes real repositories
hold credentials in — languages, config formats, containers of text — with hard negatives
of each kind, and labels written by the generator itself.

It shares nothing with the first corpus (bench/scan_accuracy.py): no rule template, no
catalog example, no filler from another code base. Values come from values.py, shapes from
shapes.py; families are capabilities (names, syntax, containers, keymaterial, providers,
classic, connections), so a family's recall says whether the scanner has that capability.

    python bench/corpus2/build.py OUT [--seed N]     # writes OUT/… and OUT/labels.json

Deterministic for a seed. ``labels.json``: ``[{"path", "first", "last", "family", "shape"}]``
(1-based inclusive lines of one credential; a finding on any of them finds it).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doc import Doc, Plant  # noqa: E402
from families import containers, keymaterial, names, syntax  # noqa: E402
from negatives import FAMILIES, negatives  # noqa: E402
from providers import connections, providers  # noqa: E402

SEED = 14_2026


def generate(seed: int = SEED) -> list[Doc]:
    """Every document of the corpus, positives then negatives."""
    rng = random.Random(seed)
    docs: list[Doc] = []
    for make in (names, syntax, containers, keymaterial, providers, connections, negatives):
        docs.extend(make(rng))
    seen: set[str] = set()
    for doc in docs:
        if doc.path in seen:
            raise RuntimeError(f"duplicate path {doc.path}")
        seen.add(doc.path)
    return docs


def write(root: Path, seed: int = SEED) -> list[Plant]:
    """Write the corpus under ``root`` (replaced) and its labels; return the labels."""
    if root.exists():
        shutil.rmtree(root)
    plants: list[Plant] = []
    for doc in generate(seed):
        target = root / doc.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(doc.text(), encoding="utf-8")
        plants.extend(doc.plants)
    (root / "labels.json").write_text(json.dumps([p.to_json() for p in plants], indent=1) + "\n")
    return plants


def load_labels(root: Path) -> list[Plant]:
    """The labels written next to a corpus."""
    return [Plant(**item) for item in json.loads((root / "labels.json").read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    plants = write(args.out, args.seed)
    per: dict[str, int] = {}
    for plant in plants:
        per[plant.family] = per.get(plant.family, 0) + 1
    summary = ", ".join(f"{family} {per.get(family, 0)}" for family in FAMILIES)
    print(f"{len(plants)} credentials: {summary}")  # noqa: T201


if __name__ == "__main__":
    main()
