"""One visual language, stated once and read by every report, chart, page and annotated video:
the colour of each expression, of each valence, of a face that cannot be read, and of each person
(a palette of dark, muted tones that no expression or valence colour resembles); one way to write
a time (m:ss, with tenths where a second is too coarse), a share and a count. The web page reads
the same values from `/presentation.js` (serve/routes/meta.py)."""

from __future__ import annotations

import json
import math

EXPRESSION_COLORS = {  # bright, one hue each
    "angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#ffbb1e", "neutral": "#a0a0a0",
    "sad": "#1f77b4", "surprise": "#2ca02c", "contempt": "#e377c2"}
VALENCE_COLORS = {"positive": "#1a9850", "negative": "#d73027", "neutral": "#bdbdbd"}
VALENCE_MARK = {"positive": "+", "negative": "-", "neutral": "~"}  # ASCII: drawn by OpenCV too
UNREADABLE_COLOR = "#5a5a5a"
# persons: dark and muted (value <= 0.55, saturation <= 0.6), so a person's line is never read as
# an expression's colour; past these, hues spread by the golden angle at the same darkness
PERSON_COLORS = ["#08306b", "#00441b", "#3f007d", "#67000d", "#7f2704", "#014636", "#49006a", "#252525",
                 "#2b5f75", "#5b4a14", "#4a1486", "#704214", "#1b3a4b", "#3d5a1e", "#2a1a3a", "#4d4d4d"]


def rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' as (r, g, b)."""
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def bgr(color: str) -> tuple[int, int, int]:
    """'#rrggbb' as OpenCV's (b, g, r)."""
    r, g, b = rgb(color)
    return b, g, r


def expression_color(label: str) -> str:
    return EXPRESSION_COLORS.get(label, "#808080")


def person_color(index: int) -> str:
    """The colour of the index-th person shown (0-based)."""
    if index < len(PERSON_COLORS):
        return PERSON_COLORS[index]
    return f"hsl({(index * 137.508) % 360:.0f}, 45%, 30%)"


def clock(seconds: float, tenths: bool = False) -> str:
    """A time as m:ss (or m:ss.s with `tenths`), floored: 6.84 s is 0:06 or 0:06.8."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if tenths:
        t = math.floor(seconds * 10 + 1e-9) / 10
        return f"{int(t // 60)}:{t % 60:04.1f}"
    s = int(math.floor(seconds + 1e-9))
    return f"{s // 60}:{s % 60:02d}"


def whole_seconds(seconds: float) -> int:
    """The seconds a span of time is reported in: a last partial second counts when it holds at
    least half a second (a 6.84 s ad has seconds 0 to 6; a 9.18 s one, 0 to 8: no empty last row)."""
    return max(0, int(math.floor(seconds + 0.5)))


def share(x: float | None) -> str:
    """A share as a whole percentage ('42%'); a dash when unknown."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.0%}"


def share_with_interval(x: float | None, interval=None) -> str:
    """A share and its 95% interval, as whole percentages ('52% (46-58%)'); the share alone when
    no interval is known."""
    if interval is None or len(interval) != 2 or share(x) == "–":
        return share(x)
    return f"{share(x)} ({interval[0] * 100:.0f}–{interval[1]:.0%})"


def count(n: int | None, noun: str = "") -> str:
    """A count with thousands separators and its noun made plural ('1 viewer', '1,204 viewers')."""
    if n is None:
        return "–"
    return f"{n:,}" + (f" {noun}{'' if n == 1 else 's'}" if noun else "")


def javascript() -> str:
    """The same values for the web page, as `window.PRESENTATION`."""
    return "window.PRESENTATION = " + json.dumps({
        "expression": EXPRESSION_COLORS, "valence": VALENCE_COLORS, "valenceMark": VALENCE_MARK,
        "unreadable": UNREADABLE_COLOR, "persons": PERSON_COLORS}) + ";\n"
