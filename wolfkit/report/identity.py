"""The run's identity at the top of every notebook report, under the notebook's own title."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wolfkit.report.display import BannerStyle, banner, markdown, record

if TYPE_CHECKING:
    from wolfkit.runs import RunContext


def shown_value(value: Any) -> str:
    """A notebook parameter as the header lists it: numbers with thousands separators, never `100000.0`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def header(ctx: RunContext) -> None:
    """The run's identity (version, parameter digest, run id, session) below the notebook's one title, and
    a banner when the prices are synthetic or the day is not a trading day."""
    import wolfkit

    p = ctx.params
    synthetic = p.data.source.partition(":")[0] == "demo"
    lines = [
        f"**{ctx.session:%A %d %B %Y}** — `{ctx.kind}` run `{ctx.run_id}`",
        "",
        f"- wolfkit {wolfkit.__version__}; parameters `{ctx.params_path.name}` "
        f"(name `{p.name}`, digest `{p.digest()}`)",
        f"- data source: `{p.data.source}`; broker: `{p.execution.broker}`",
        f"- outputs: `{ctx.day_dir}`",
    ]
    if ctx.extra:
        lines.append("- " + "; ".join(f"{k}: {shown_value(v)}" for k, v in ctx.extra.items() if v != ""))
    markdown("\n".join(lines))
    if synthetic:
        from wolfkit.data.demo import SYNTHETIC_NOTICE

        banner(BannerStyle.SYNTHETIC, "Synthetic prices", [SYNTHETIC_NOTICE])
    if ctx.forced:
        banner(BannerStyle.WARNING, "Forced run", [f"{ctx.session} is not a trading day."])
    record("wolfkit_version", wolfkit.__version__)
    record("params_digest", p.digest())
    record("params_name", p.name)
    record("run_id", ctx.run_id)
    record("session", ctx.session)
    record("synthetic", synthetic)
