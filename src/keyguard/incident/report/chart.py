"""The usage chart: events per hour with exposure, detection, containment and anomalies."""

from __future__ import annotations

import io
from datetime import datetime
from functools import cache
from typing import Any

from keyguard.incident.i18n import N_, Localised
from keyguard.incident.report.data import ReportData
from keyguard.incident.report.fonts import cjk_font_file

_LABELS = Localised(
    {
        "title": N_("Use of {keys} (events per hour, UTC)"),
        "events": N_("events"),
        "denied": N_("refused"),
        "exposed": N_("exposed"),
        "detected": N_("detected"),
        "contained": N_("contained"),
        "anomaly": N_("anomaly"),
        "window": N_("exposure window"),
    }
)


@cache
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    bundled = cjk_font_file()
    if bundled.is_file():
        font_manager.fontManager.addfont(str(bundled))
        name: str = font_manager.FontProperties(fname=str(bundled)).get_name()
        return name
    names = {f.name for f in font_manager.fontManager.ttflist}
    for wanted in (
        "Noto Sans CJK SC",
        "WenQuanYi Micro Hei",
        "WenQuanYi Zen Hei",
        "Noto Sans CJK JP",
    ):
        if wanted in names:
            return wanted
    return None


def usage_chart_png(data: ReportData, lang: str = "en") -> bytes:
    """A PNG of the key's use over time, with the exposure window and events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    font = _cjk_font() if lang == "zh" else None
    labels = _LABELS["zh" if lang == "zh" and font else "en"]  # no CJK font: English beats boxes
    inc = data.incident
    contained = data.contained_at
    rc: Any = {"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"], "font.size": 9}
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
        try:

            def num(at: datetime) -> float:
                return float(mdates.date2num(at))  # type: ignore[no-untyped-call]

            hours = [num(p.hour) for p in data.usage]
            width = 50 / 1440  # 50 minutes, in days
            ax.bar(
                hours,
                [p.count - p.denied for p in data.usage],
                width=width,
                color="#4c78a8",
                label=labels["events"],
                align="edge",
            )
            ax.bar(
                hours,
                [p.denied for p in data.usage],
                width=width,
                bottom=[p.count - p.denied for p in data.usage],
                color="#e45756",
                label=labels["denied"],
                align="edge",
            )
            end = contained or data.now
            ax.axvspan(num(inc.exposed_at), num(end), color="#f58518", alpha=0.12, label=labels["window"])
            marks: list[tuple[datetime | None, str, str]] = [
                (inc.exposed_at, "#f58518", labels["exposed"]),
                (inc.detected_at, "#54a24b", labels["detected"]),
                (contained, "#000000", labels["contained"]),
            ]
            for at, colour, label in marks:
                if at is not None:
                    ax.axvline(num(at), color=colour, linestyle="--", linewidth=1.2, label=label)
            if data.anomalies:
                top = max((p.count for p in data.usage), default=1) or 1
                ax.scatter(
                    [num(a.at) for a in data.anomalies],
                    [top * 1.05] * len(data.anomalies),
                    marker="v",
                    color="#b279a2",
                    zorder=5,
                    label=labels["anomaly"],
                )
            keys = ", ".join(str(k) for k in inc.keys)
            ax.set_title(labels["title"].format(keys=keys))
            ax.set_ylabel(labels["events"])
            ax.legend(loc="upper left", fontsize=7, ncol=3)
            fmt = mdates.DateFormatter("%m-%d %H:%M")  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_formatter(fmt)
            fig.autofmt_xdate()
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            return buffer.getvalue()
        finally:
            plt.close(fig)
