"""Self-contained HTML reports: headings, tables and PNG plots embedded as data URIs (torch-free)."""

from __future__ import annotations

import base64
import html
import os

import pandas as pd

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 12px}
h1,h2,p,figcaption,li{overflow-wrap:break-word}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f5f5f5;padding:1px 4px}"""


class PlottingUnavailable(ImportError):
    """matplotlib is not installed (it is the `plots` extra, not part of the core install)."""


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports run headless, in servers and CI)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlottingUnavailable("charts need matplotlib: pip install 'emoscope[plots]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def png_tag(path: str, alt: str = "") -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, sections: list[tuple[str, str]]) -> str:
    """A report page: `sections` are (heading, inner HTML) pairs; the style reads on a phone."""
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{inner}\n" for h, inner in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>")


def write_html(path: str, title: str, sections: list[tuple[str, str]]) -> str:
    """`html_page` written to `path`. Returns the path written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(html_page(title, sections))
    return path


def cells(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> list[list[str]]:
    """A table's cells as text by the rules of `table` (for the PDF's tables)."""
    return [["–" if pd.isna(v) else floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
            for row in df.itertuples(index=False)]


def table(df: pd.DataFrame, floatfmt: str = "{:.3f}", escape: bool = True) -> str:
    """A table for a report: floats to `floatfmt`, missing values as a dash (never "NaN"), in a
    box that scrolls sideways on a narrow screen instead of widening the page. `escape=False`
    keeps HTML in the cells (the caller has escaped the text in them)."""
    return ("<div class='scroll'>" + df.to_html(index=False, float_format=lambda v: floatfmt.format(v), border=0,
                                                 na_rep="–", escape=escape) + "</div>")
