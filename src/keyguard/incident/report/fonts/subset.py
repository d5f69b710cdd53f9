"""Rebuild the bundled CJK font: ``python -m keyguard.incident.report.fonts.subset [SOURCE]``.

Subsets Noto Sans CJK SC Regular (the system's, from ``fonts-noto-cjk``) to the
characters keyguard itself writes in Chinese (the zh catalog, the playbooks, the
regulations) plus GB 2312 level 1, the 3,755 most common characters.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keyguard.incident.i18n import catalog_path
from keyguard.incident.report.fonts import BUNDLED

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
#: Index of the Simplified Chinese face in the Noto Sans CJK collection.
SC_FACE = 2
_INCIDENT = Path(__file__).resolve().parents[2]


def own_text() -> str:
    """Every character keyguard writes in Chinese: the catalog and the YAML data files."""
    parts = [catalog_path("zh").read_text("utf-8")]
    for folder in ("playbooks", "regulations"):
        parts += [p.read_text("utf-8") for p in sorted((_INCIDENT / folder).glob("*.yaml"))]
    return "".join(parts)


def gb2312_level1() -> str:
    """The 3,755 characters of GB 2312 level 1 (rows 16-55)."""
    chars = []
    for row in range(0xB0, 0xD8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.append(bytes((row, cell)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


def build(source: Path = SOURCE, target: Path = BUNDLED) -> None:
    """Write the subset of ``source`` to ``target``."""
    from fontTools import subset  # type: ignore[import-untyped]

    options = subset.Options()
    options.font_number = SC_FACE if source.suffix == ".ttc" else -1
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    font = subset.load_font(str(source), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=own_text() + gb2312_level1() + "，。：；（）【】《》、“”‘’！？…—·")
    subsetter.subset(font)
    font.save(str(target))


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
