"""The CJK font embedded in Chinese reports: a bundled subset of Noto Sans CJK SC.

WeasyPrint and matplotlib find fonts through fontconfig; on a machine without a
CJK font (Debian ``fonts-noto-cjk``) every Chinese glyph would be drawn as a box.
So the report declares its CJK font with ``@font-face`` from a file shipped with
keyguard, ``NotoSansCJKsc-keyguard.otf`` beside this module: a subset of Noto Sans
CJK SC Regular (SIL Open Font License 1.1, see ``OFL.txt``) holding every character
of the zh catalog, the playbooks and the regulations plus the 3,755 most common
Chinese characters (GB 2312 level 1). Characters outside it fall back to the
system's Noto Sans CJK SC where one is installed. ``python -m
keyguard.incident.report.fonts.subset`` rebuilds the file (needs fonts-noto-cjk).
"""

from __future__ import annotations

from pathlib import Path

#: The family name the report's CSS and the chart use for CJK text.
FAMILY = "Noto Sans CJK SC Keyguard"
BUNDLED = Path(__file__).with_name("NotoSansCJKsc-keyguard.otf")


def cjk_font_file() -> Path:
    """The font file that renders Chinese text in reports and charts."""
    return BUNDLED


def font_face_css() -> str:
    """An ``@font-face`` rule that declares :data:`FAMILY` from :func:`cjk_font_file`."""
    return f'@font-face {{ font-family: "{FAMILY}"; src: url("{cjk_font_file().as_uri()}"); }}'
