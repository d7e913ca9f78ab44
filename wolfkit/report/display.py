"""What a notebook cell shows and records: plotly figures as bundles that JupyterLab renders natively
*and* that survive into the nbconvert HTML report, Markdown and tables, and recorded values.

`setup()` embeds plotly.js once per notebook, so both the executed notebook and its HTML report read
offline. `record(name, value)` stores a JSON value in the notebook's outputs (a wolfkit mimetype that
HTML export drops) and `read_records(notebook)` reads them back — how tests and audits check what a
run saw.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

RECORD_MIMETYPE = "application/vnd.wolfkit.record+json"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
RENDERER = "wolfkit"


def _display(bundle: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    from IPython.display import display

    display(dict(bundle), metadata=dict(metadata or {}), raw=True)


class Renderer(pio.base_renderers.MimetypeRenderer):
    """Plotly mimetype for JupyterLab plus a `text/html` div that needs only a global `Plotly`."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        return {PLOTLY_MIMETYPE: jsonable(fig_dict), "text/html": figure_html(fig_dict)}


def figure_html(fig: go.Figure | dict) -> str:
    """A figure as an HTML `<div>` + script that needs only a global `Plotly` (see `plotlyjs_bundle`)."""
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False}, validate=False)


def plotlyjs_bundle() -> str:
    """plotly.js in a `<script>` that sets `window.Plotly` even where require.js is loaded."""
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.__wkDefine = window.define; window.define = undefined;</script>\n"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n"
        "<script>window.define = window.__wkDefine;</script>"
    )


# Tables wrap their text instead of scrolling sideways (a report must fit 1,280 px); banners stand out.
REPORT_CSS = """<style>
.jp-RenderedHTMLCommon table { font-size: 12px; max-width: 100%; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { white-space: normal; overflow-wrap: anywhere;
  max-width: 40em; padding: 2px 6px; }
.wolfkit-banner { border-left: 6px solid; border-radius: 4px; padding: 8px 14px; margin: 8px 0; font-size: 14px; }
.wolfkit-banner ul { margin: 4px 0 0 0; padding-left: 20px; }
.wolfkit-banner.warning { background: #fff4e5; border-color: #e8590c; color: #5c2a00; }
.wolfkit-banner.synthetic { background: #f3e8ff; border-color: #7048e8; color: #2b1660; }
.wolfkit-banner.ok { background: #ebfbee; border-color: #2f9e44; color: #0b3d17; }
</style>"""


class BannerStyle(StrEnum):
    WARNING = "warning"
    SYNTHETIC = "synthetic"
    OK = "ok"


def banner_html(style: BannerStyle, title: str, lines: Sequence[str] = ()) -> str:
    """A coloured box at the top of a report (text is escaped; `title` may hold a link made here)."""
    items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
    return (f"<div class='wolfkit-banner {style}' role='alert'><strong>{title}</strong>"
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def banner(style: BannerStyle, title: str, lines: Sequence[str] = ()) -> None:
    """Display a banner (see `banner_html`)."""
    _display({"text/html": banner_html(style, title, lines), "text/plain": "\n".join([title, *lines])})


def anchor(name: str) -> None:
    """An invisible link target (`#name`) at this point of the report."""
    _display({"text/html": f"<a id='{html.escape(name)}'></a>", "text/plain": ""})


def setup() -> None:
    """Register the `wolfkit` plotly renderer as the default and embed plotly.js once (offline reading),
    with the report's table and banner styles."""
    pio.renderers[RENDERER] = Renderer()
    pio.renderers.default = RENDERER
    _display({"text/html": plotlyjs_bundle() + "\n" + REPORT_CSS + "\n<span class='wolfkit-plotlyjs'></span>"})


def show(fig: go.Figure) -> None:
    """Display a figure through the wolfkit renderer (whatever the current default is)."""
    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = Renderer()
    _display(pio.renderers[RENDERER].to_mimebundle(fig.to_plotly_json()))


def markdown(text: str) -> None:
    """Display Markdown; `$` is escaped so dollar amounts never turn into LaTeX math."""
    from IPython.display import Markdown, display

    display(Markdown(text.replace("$", r"\$")))


def table_html(df: pd.DataFrame, caption: str | None = None, formats: Mapping[str, str] | None = None) -> str:
    """A table as HTML (no index, text left-aligned) with optional per-column format strings."""
    styler = df.style.hide(axis="index").set_properties(
        subset=[c for c in df.columns if df[c].dtype == object], **{"text-align": "left"})
    if formats:
        styler = styler.format({k: v for k, v in formats.items() if k in df.columns}, na_rep="")
    if caption:
        styler = styler.set_caption(caption)
    return styler.to_html()


def table(df: pd.DataFrame, caption: str | None = None, formats: Mapping[str, str] | None = None) -> None:
    """Display a table (HTML, no index) with optional per-column format strings."""
    _display({"text/html": table_html(df, caption, formats), "text/plain": df.to_string(index=False)})


def long_table(df: pd.DataFrame, claim: Callable[[], Path], limit: int, caption: str,
               formats: Mapping[str, str] | None = None) -> Path | None:
    """A table of at most `limit` rows; a longer one shows its first `limit` rows and links the full
    list, written to the CSV `claim()` names (claimed only then: e.g. `RunContext.export_path` beside
    the report). Returns the CSV written, if any. The link is relative, so it works from the HTML
    report in the same folder."""
    if len(df) <= limit:
        table(df, caption=caption, formats=formats)
        return None
    path = claim()
    df.to_csv(path, index=False)
    table(df.head(limit), caption=f"{caption}: the first {limit} of {len(df)}", formats=formats)
    markdown(f"All {len(df)} rows: [{path.name}]({path.name}) (CSV beside this report).")
    return path


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: numpy/pandas scalars, dates, enums, paths, frames; NaN becomes null."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def record(name: str, value: Any) -> None:
    """Store `value` under `name` in this cell's outputs (read back with `read_records`)."""
    _display({RECORD_MIMETYPE: {"name": name, "value": jsonable(value)}})


def read_records(notebook: str | Path | Any) -> dict[str, Any]:
    """Every value an executed notebook recorded, by name (a later record of a name wins)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
            if RECORD_MIMETYPE in data:
                rec = data[RECORD_MIMETYPE]
                rec = json.loads(rec) if isinstance(rec, str) else rec
                out[rec["name"]] = rec["value"]
    return out
