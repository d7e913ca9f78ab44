"""The run's identity at the top of every notebook report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wolfkit.report.display import markdown, record

if TYPE_CHECKING:
    from wolfkit.runs import RunContext


def header(ctx: RunContext) -> None:
    """The run's identity at the top of every report (version, parameter digest, run id, session)."""
    import wolfkit

    p = ctx.params
    synthetic = p.data.source.partition(":")[0] == "demo"
    lines = [
        f"# wolfkit {ctx.kind} — {ctx.session:%A %d %B %Y}",
        "",
        f"- run id: `{ctx.run_id}`",
        f"- wolfkit {wolfkit.__version__}; parameters `{ctx.params_path.name}` "
        f"(name `{p.name}`, digest `{p.digest()}`)",
        f"- data source: `{p.data.source}`; broker: `{p.execution.broker}`",
        f"- outputs: `{ctx.day_dir}`",
    ]
    if ctx.extra:
        lines.append("- " + "; ".join(f"{k} = {v}" for k, v in ctx.extra.items() if v != ""))
    if ctx.forced:
        lines += ["", f"**Forced run:** {ctx.session} is not a trading day."]
    if synthetic:
        from wolfkit.data.demo import SYNTHETIC_NOTICE

        lines += ["", f"**{SYNTHETIC_NOTICE}**"]
    markdown("\n".join(lines))
    record("wolfkit_version", wolfkit.__version__)
    record("params_digest", p.digest())
    record("params_name", p.name)
    record("run_id", ctx.run_id)
    record("session", ctx.session)
    record("synthetic", synthetic)
