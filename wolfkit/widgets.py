"""The tuning panel: ipywidgets controls over the portfolio rules with a live preview of the pack.

An analyst moves a control; the panel rebuilds the parameter set through the one `Params` model
(so an impossible combination is reported, not previewed), re-packs the same opportunities with
`wolfkit.orders.build_order_plan`, and shows the packed portfolio (table and plotly charts) and the
difference from the parameter set it started from. "Save" writes `parameters/<name>.yaml` as
`extends: <base>` plus only what differs, and reads it back through `wolfkit.config.load_params`.
"Backtest this setting" runs the research backtest of the proposed set and of the current one over a
chosen window (`wolfkit.backtest.compare.compare_settings`) and shows Sharpe, max drawdown and
turnover side by side.

Everything observable lives on the object (`params`, `build`, `error`, `diff()`, `summary()`,
`figures`, `comparison`), so the panel is unit-tested without a kernel; the widgets only render it.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd
import yaml

from wolfkit.config import Params, load_params, params_from_dict
from wolfkit.domain import PlanStatus
from wolfkit.errors import WolfkitError

if TYPE_CHECKING:
    from wolfkit.calibration import Calibration

_PCT = {"readout_format": ".1%", "continuous_update": False, "style": {"description_width": "150px"},
        "layout": {"width": "460px"}}
_X = {"readout_format": ".2f", "continuous_update": False, "style": {"description_width": "150px"},
      "layout": {"width": "460px"}}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists to `dotted.path` → leaf value (lists of scalars stay whole)."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out if d else {prefix[:-1]: {}}
    if isinstance(d, list) and any(isinstance(x, (dict, list)) for x in d):
        out = {}
        for i, v in enumerate(d):
            out |= flatten(v, f"{prefix}{i}.")
        return out
    return {prefix[:-1]: d}


def params_diff(base: Params, new: Params) -> pd.DataFrame:
    """What differs between two parameter sets: key (dotted path), current, proposed (`name` ignored)."""
    a, b = flatten(base.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    keys = [k for k in dict.fromkeys([*a, *b]) if k != "name" and a.get(k) != b.get(k)]
    return pd.DataFrame({"key": keys, "current": [a.get(k) for k in keys], "proposed": [b.get(k) for k in keys]})


def overrides(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The mapping that, merged over `base` as `extends:` merges, gives `new` (removed keys cannot be
    expressed: `save` checks the round trip and falls back to the full set)."""
    out: dict[str, Any] = {}
    for k, v in new.items():
        b = base.get(k)
        if isinstance(v, dict) and isinstance(b, dict):
            sub = overrides(b, v)
            if sub:
                out[k] = sub
        elif b != v:
            out[k] = v
    return out


class TuningPanel:
    """Controls for the portfolio rules, a live preview of the packed portfolio, and a save button."""

    def __init__(
        self,
        params: Params,
        opportunities: pd.DataFrame,
        equity: float,
        buying_power: float | None,
        as_of: date,
        base_path: Path | None = None,
        save_dir: Path = Path("parameters"),
        synthetic: bool = False,
        calibration: Calibration | None = None,
    ) -> None:
        self.base = params
        self.calibration = calibration  # the session's (`calibration.for_build`): the pack premarket builds
        self.base_path = base_path
        self.save_dir = Path(save_dir)
        self.opportunities = opportunities
        self.equity, self.buying_power, self.as_of, self.synthetic = equity, buying_power, as_of, synthetic
        self.params: Params = params
        self.build: Any = None
        self.error: str | None = None
        self.figures: dict[str, Any] = {}
        self.recomputed = 0
        self._apply: list[Callable[[dict[str, Any]], None]] = []
        self._touched: set[str] = set()  # sectors whose cap slider the user moved (an override)
        self._syncing = False
        self.controls: dict[str, W.ValueWidget] = {}
        self._make_controls()
        self.summary_html = W.HTML(layout={"min_height": "40px"})
        self.table_html = W.HTML()
        self.diff_html = W.HTML()
        self.charts = W.Output()
        self.name = W.Text(value=f"{params.name}-tuned", description="save as", style={"description_width": "60px"})
        self.save_button = W.Button(description="Save parameters", button_style="primary", icon="save")
        self.save_status = W.HTML()
        self.save_button.on_click(lambda _b: self._save_clicked())
        self.comparison: Any = None  # the last `compare_settings` result
        first, last = backtest_window(as_of)
        self.bt_start = W.DatePicker(value=first, description="from", style={"description_width": "40px"})
        self.bt_end = W.DatePicker(value=last, description="to", style={"description_width": "40px"})
        self.bt_button = W.Button(description="Backtest this setting", icon="line-chart")
        self.bt_html = W.HTML()
        self.bt_button.on_click(lambda _b: self.backtest())
        self.recompute()
        for key, w in self.controls.items():
            w.observe(lambda change, k=key: self._changed(k, change), names="value")
        self.widget = self._layout()

    # -------------------------------------------------------------------------------- controls

    def _add(self, key: str, widget: W.ValueWidget, apply: Callable[[dict[str, Any], Any], None]) -> None:
        self.controls[key] = widget
        self._apply.append(lambda raw: apply(raw, widget.value))

    def _make_controls(self) -> None:
        p = self.base
        port, lev = p.portfolio, p.leverage

        def setp(*path: str | int) -> Callable[[dict[str, Any], Any], None]:
            def f(raw: dict[str, Any], v: Any) -> None:
                d: Any = raw  # nested dicts and lists of the raw parameters
                for k in path[:-1]:
                    d = d[k]
                d[path[-1]] = list(v) if isinstance(v, tuple) else v
            return f

        def setpair(lo_key: str, hi_key: str, *path: str | int) -> Callable[[dict[str, Any], Any], None]:
            def f(raw: dict[str, Any], v: Any) -> None:
                d: Any = raw  # nested dicts and lists of the raw parameters
                for k in path:
                    d = d[k]
                d[lo_key], d[hi_key] = v
            return f

        self._add("method", W.ToggleButtons(options=["optimal", "greedy"], value=port.method, description="method"),
                  setp("portfolio", "method"))
        self._add("sector_cap", W.FloatSlider(value=port.sector_cap, min=0.05, max=1.0, step=0.01,
                                              description="sector cap", **_PCT), setp("portfolio", "sector_cap"))
        sectors = sorted(self.opportunities["sector"].dropna().astype(str).unique())
        for s in sectors:
            self._add(f"sector_caps.{s}", W.FloatSlider(value=port.cap_for(s), min=0.05, max=1.0, step=0.01,
                                                        description=s[:22], **_PCT), self._sector_override(s))
        self._add("position_bounds", W.FloatRangeSlider(value=(port.position_min, port.position_max), min=0.0,
                                                        max=0.3, step=0.005, description="position min/max", **_PCT),
                  setpair("position_min", "position_max", "portfolio"))
        self._add("positions", W.IntRangeSlider(value=(port.min_positions, port.max_positions), min=1, max=40,
                                                description="positions min/max", continuous_update=False,
                                                style=_PCT["style"], layout=_PCT["layout"]),
                  setpair("min_positions", "max_positions", "portfolio"))
        self._add("target_positions", W.IntSlider(value=port.target_positions, min=1, max=40, description="target positions",
                                                  continuous_update=False, style=_PCT["style"], layout=_PCT["layout"]),
                  setp("portfolio", "target_positions"))
        self._add("cash_reserve", W.FloatSlider(value=port.cash_reserve, min=0.0, max=0.5, step=0.01,
                                                description="cash reserve", **_PCT), setp("portfolio", "cash_reserve"))
        for i, t in enumerate(port.tiers):
            self._add(f"tiers.{i}.min_score", W.FloatSlider(value=t.min_score, min=0, max=100, step=1,
                                                            description=f"tier {i + 1} min score", readout_format=".0f",
                                                            continuous_update=False, style=_PCT["style"],
                                                            layout=_PCT["layout"]),
                      setp("portfolio", "tiers", i, "min_score"))
            self._add(f"tiers.{i}.band", W.FloatRangeSlider(value=(t.weight_min, t.weight_max), min=0.0, max=0.3,
                                                            step=0.005, description=f"tier {i + 1} weight", **_PCT),
                      setpair("weight_min", "weight_max", "portfolio", "tiers", i))
        for tier, (lo, hi) in port.market_cap.bands.items():
            self._add(f"cap_bands.{tier}", W.FloatRangeSlider(value=(lo, hi), min=0.0, max=1.0, step=0.01,
                                                              description=f"{tier} cap share", **_PCT),
                      setp("portfolio", "market_cap", "bands", tier))
        self._add("directional_max", W.FloatSlider(value=lev.directional_max, min=0.5, max=4.0, step=0.05,
                                                   description="directional max (x)", **_X),
                  setp("leverage", "directional_max"))
        self._add("total_max", W.FloatSlider(value=lev.total_max, min=0.5, max=4.0, step=0.05,
                                             description="total max (x)", **_X), setp("leverage", "total_max"))
        for i, ts in enumerate(lev.maxdiff_time_shares):
            self._add(f"time_shares.{i}", W.FloatSlider(value=ts.share, min=0.0, max=1.0, step=0.05,
                                                        description=f"maxdiff from {ts.start:%H:%M}", **_PCT),
                      setp("leverage", "maxdiff_time_shares", i, "share"))

    def _sector_override(self, sector: str) -> Callable[[dict[str, Any], Any], None]:
        def f(raw: dict[str, Any], v: float) -> None:
            if sector in self._touched or sector in self.base.portfolio.sector_caps:
                raw["portfolio"].setdefault("sector_caps", {})[sector] = v
        return f

    def _changed(self, key: str, change: dict[str, Any]) -> None:
        """A control moved: record sector overrides, let untouched sector sliders follow the general
        cap, then recompute once."""
        if self._syncing:
            return
        if key.startswith("sector_caps."):
            self._touched.add(key.removeprefix("sector_caps."))
        if key == "sector_cap":
            self._syncing = True
            try:
                for k, w in self.controls.items():
                    s = k.removeprefix("sector_caps.")
                    if k.startswith("sector_caps.") and s not in self._touched and s not in self.base.portfolio.sector_caps:
                        w.value = change["new"]
            finally:
                self._syncing = False
        self.recompute()

    # --------------------------------------------------------------------------------- preview

    def proposed(self) -> Params:
        """The parameter set the controls describe (raises BadInputError when it is impossible)."""
        raw = self.base.model_dump(mode="json")
        for apply in self._apply:
            apply(raw)
        return params_from_dict(raw, "tuning panel")

    def recompute(self) -> None:
        """Validate the controls and re-pack; on a bad combination keep the last preview and say why."""
        from wolfkit.orders import build_order_plan

        self.recomputed += 1
        try:
            params = self.proposed()
            build = build_order_plan(self.opportunities, params, equity=self.equity, buying_power=self.buying_power,
                                     as_of=self.as_of, run_id="tune", synthetic=self.synthetic,
                                     calibration=self.calibration)
        except WolfkitError as e:
            self.error = str(e)
            self._render()
            return
        self.params, self.build, self.error = params, build, None
        self._figures()
        self._render()

    def summary(self) -> dict[str, Any]:
        """The preview's key numbers (what the summary line shows)."""
        if self.build is None:
            return {"error": self.error}
        t = self.build.targets
        return {
            "positions": len(t.weights),
            "allocation": round(float(t.allocation), 6),
            "method": t.method,
            "objective": round(float(t.objective), 6),
            "max_sector_weight": round(max(t.sector_weights.values(), default=0.0), 6),
            "orders": len(self.build.plan.orders),
            "maxdiff_listening": sum(m.status == PlanStatus.LISTENING for m in self.build.plan.maxdiff_plans),
            "error": self.error,
        }

    def diff(self) -> pd.DataFrame:
        """The difference between the proposed parameters and the set the panel started from."""
        return params_diff(self.base, self.params)

    def _figures(self) -> None:
        from wolfkit import report

        t = self.build.targets
        port = self.params.portfolio
        self.figures = {
            "weights": report.fig_weights(t.weights),
            "sectors": report.fig_against_caps(
                t.sector_weights, {s: (0.0, port.cap_for(s)) for s in sorted(t.sector_weights)},
                "Sector weight vs cap"),
            "leverage": report.fig_leverage(report.leverage_buckets(self.build), self.params),
        }

    def _render(self) -> None:
        s = self.summary()
        if self.build is not None:
            text = (f"<b>{s['positions']} positions</b>, {s['allocation']:.1%} allocated, method {s['method']}, "
                    f"objective {s['objective']:.4f}, largest sector {s['max_sector_weight']:.1%}, "
                    f"{s['orders']} orders, {s['maxdiff_listening']} maxdiff plans listening")
        else:
            text = "no preview yet"
        err = (f"<div style='color:#b00020'><b>Not applied:</b> {html.escape(self.error)}</div>"
               if self.error else "")
        self.summary_html.value = f"<div class='wolfkit-preview-summary'>{text}</div>{err}"
        if self.build is not None:
            w = self.build.targets.weights
            cols = [c for c in ("symbol", "sector", "cap_tier", "score", "tier", "weight", "reason") if c in w.columns]
            self.table_html.value = (w[cols].style.hide(axis="index")
                                     .format({"score": "{:.1f}", "weight": "{:.2%}"}).to_html())
        d = self.diff()
        self.diff_html.value = ("<i>No change from the current parameter set.</i>" if d.empty
                                else "<b>Changes from the current set</b>" + d.to_html(index=False))
        self._draw()

    def _draw(self) -> None:
        from IPython import get_ipython

        if get_ipython() is None or not self.figures:
            return  # no kernel (unit tests): the figures are on `self.figures`
        from wolfkit import report

        self.charts.clear_output(wait=True)
        with self.charts:
            for fig in self.figures.values():
                report.show(fig)

    # -------------------------------------------------------------------------------- backtest

    def backtest(self) -> None:
        """Backtest the proposed set against the current one over the pickers' window; show the change."""
        from wolfkit.backtest.compare import compare_settings

        start, end = self.bt_start.value, self.bt_end.value
        if self.error is not None:
            self.bt_html.value = ("<span style='color:#b00020'>The controls describe an impossible set "
                                  "(see above): nothing to backtest.</span>")
            return
        if start is None or end is None:
            self.bt_html.value = "<span style='color:#b00020'>Pick both dates of the window.</span>"
            return
        self.bt_html.value = f"<i>Backtesting {start} … {end} …</i>"
        try:
            self.comparison = compare_settings(self.base, self.params, start, end)
        except WolfkitError as e:
            self.comparison = None
            self.bt_html.value = f"<span style='color:#b00020'>{html.escape(str(e))}</span>"
            return
        self.bt_html.value = comparison_html(self.comparison)

    # ------------------------------------------------------------------------------------ save

    def save(self, name: str) -> Path:
        """Write `<save_dir>/<name>.yaml` (extends the base file when it sits beside it) and validate it."""
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise WolfkitError(f"parameter set name {name!r}: use letters, digits, '-' and '_' only")
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.save_dir / f"{name}.yaml"
        if path.exists():
            raise WolfkitError(f"{path} exists; choose another name (saved sets are never overwritten)")
        proposed = self.params.with_changes({"name": name}, "tuning panel")
        new = proposed.model_dump(mode="json")
        head = f"# Saved from the wolfkit tuning panel on {date.today()}, starting from {self.base.name!r}.\n"
        bodies = [new]
        if self.base_path is not None and self.base_path.resolve().parent == self.save_dir.resolve():
            bodies.insert(0, {"extends": self.base_path.name, **overrides(self.base.model_dump(mode="json"), new)})
        for body in bodies:  # the short `extends:` form when it reproduces the set, else the full set
            text = head + yaml.safe_dump(body, sort_keys=False)
            tmp = path.with_name(f".{name}.yaml.tmp")
            tmp.write_text(text)
            try:
                ok = load_params(tmp) == proposed
            finally:
                tmp.unlink()
            if ok:
                tmp.write_text(text)
                tmp.replace(path)
                return path
        raise WolfkitError(f"{path}: the saved file would not reproduce the proposed parameters; not saved")

    def _save_clicked(self) -> None:
        try:
            p = self.save(self.name.value.strip())
        except WolfkitError as e:
            self.save_status.value = f"<span style='color:#b00020'>{html.escape(str(e))}</span>"
            return
        d = self.diff()
        self.save_status.value = (f"Saved <code>{html.escape(str(p))}</code> ({len(d)} change(s)); "
                                  f"check it with <code>wolfkit params check {html.escape(str(p))}</code>")

    # ---------------------------------------------------------------------------------- layout

    def _layout(self) -> W.Widget:
        c = self.controls
        groups = {
            "Pack": ["method", "positions", "target_positions", "position_bounds", "cash_reserve"],
            "Sectors": ["sector_cap", *[k for k in c if k.startswith("sector_caps.")]],
            "Score tiers": [k for k in c if k.startswith("tiers.")],
            "Market-cap bands": [k for k in c if k.startswith("cap_bands.")],
            "Leverage": ["directional_max", "total_max", *[k for k in c if k.startswith("time_shares.")]],
        }
        acc = W.Accordion(children=[W.VBox([c[k] for k in keys]) for keys in groups.values()])
        for i, title in enumerate(groups):
            acc.set_title(i, title)
        acc.selected_index = 0
        backtest = W.VBox([W.HTML("<b>Backtest this setting</b> against the current parameters"),
                           W.HBox([self.bt_start, self.bt_end, self.bt_button]), self.bt_html])
        preview = W.VBox([self.summary_html, self.charts, self.table_html, self.diff_html,
                          W.HBox([self.name, self.save_button]), self.save_status, backtest])
        return W.HBox([acc, preview], layout={"align_items": "flex-start"})

    def show_static(self) -> None:
        """The preview as plain outputs — summary, charts, the pack, the changes — for a run with no front
        end: an HTML report keeps them, and no widget message can leave the runner waiting."""
        from wolfkit import report

        self._render()
        report.markdown("**Static preview** (no front end attached: open the notebook in JupyterLab for the "
                        "controls).\n\n" + html.unescape(re.sub(r"<[^>]+>", " ", self.summary_html.value)).strip())
        for fig in self.figures.values():
            report.show(fig)
        if self.build is not None:
            w = self.build.targets.weights
            cols = [c for c in ("symbol", "sector", "cap_tier", "score", "tier", "weight", "reason") if c in w.columns]
            report.table(w[cols], caption="The packed portfolio", formats={"score": "{:.1f}", "weight": "{:.2%}"})
        d = self.diff()
        if d.empty:
            report.markdown("No change from the current parameter set.")
        else:
            report.table(d, caption="Changes from the current set")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if headless():
            self.show_static()
        else:
            display(self.widget)


HEADLESS_ENV = "WOLFKIT_HEADLESS"


def headless() -> bool:
    """True when no front end can draw widgets: set by `wolfkit.notebooks.run_notebook` (papermill) for its
    kernel, and by any other scheduler that exports WOLFKIT_HEADLESS=1."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0")


BACKTEST_SESSIONS = 20  # the panel's default window: about a month of sessions before the run date


def backtest_window(as_of: date) -> tuple[date, date]:
    """The pickers' default window: the `BACKTEST_SESSIONS` sessions ending the session before `as_of`."""
    from wolfkit import calendar

    last = calendar.previous_session(as_of)
    return calendar.sessions_ending(last, BACKTEST_SESSIONS)[0], last


_FORMATS = {"sharpe": "{:.2f}", "max_drawdown": "{:.2%}", "turnover": "{:.1f}x"}


def comparison_html(c: Any) -> str:
    """The comparison table (current / this setting / change) as HTML, with the window and the time taken."""
    def fmt(metric: str, v: float | None, signed: bool = False) -> str:
        if v is None:
            return "—"
        text = _FORMATS[metric].format(v)
        return ("+" + text) if signed and v > 0 else text

    t = c.table()
    shown = pd.DataFrame({
        "": t["metric"].map({"sharpe": "Sharpe", "max_drawdown": "max drawdown", "turnover": "turnover (per year)"}),
        "current": [fmt(m, v) for m, v in zip(t["metric"], t["current"])],
        "this setting": [fmt(m, v) for m, v in zip(t["metric"], t["setting"])],
        "change": [fmt(m, v, signed=True) for m, v in zip(t["metric"], t["change"])],
    })
    note = (f"{c.start} … {c.end}, {c.sessions} sessions, {c.seconds:.1f} s"
            + (" (current parameters' run reused)" if c.reused_current else ""))
    warn = c.setting.get("warnings") or []
    synthetic = any("synthetic" in str(w).lower() for w in warn)
    return (shown.to_html(index=False, classes="wolfkit-backtest-compare") + f"<div><small>{html.escape(note)}"
            + (" — synthetic prices: mechanics, not real performance" if synthetic else "") + "</small></div>")
