"""The import graph: every module imports on its own, there are no import circles, and imports flow one way
through the layers (foundation → data → scan → portfolio construction → orders → execution → intraday →
reports → notebooks → cli).

`LAYERS` and `ALLOWED_UPWARD` are data: moving a module to another layer is a one-line change here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wolfkit"

# Lowest first. A module may import from its own layer or a lower one, never a higher one. A name is matched
# by its longest listed prefix (`wolfkit.broker` covers `wolfkit.broker.sim`).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("wolfkit", "wolfkit.domain", "wolfkit.errors", "wolfkit.symbols", "wolfkit.config",
                    "wolfkit.calendar", "wolfkit.milp", "wolfkit.day_folder", "wolfkit.keys_file")),
    ("data", ("wolfkit.data",)),
    ("scan", ("wolfkit.rolling", "wolfkit.signals", "wolfkit.exits", "wolfkit.walk_forward", "wolfkit.exclusions",
              "wolfkit.scan", "wolfkit.panel_scan", "wolfkit.signal_weights")),
    ("construction", ("wolfkit.opportunities", "wolfkit.calibration", "wolfkit.diversify", "wolfkit.sizing",
                      "wolfkit.packing", "wolfkit.rebalance", "wolfkit.risk")),
    ("orders", ("wolfkit.orders",)),
    ("execution", ("wolfkit.broker", "wolfkit.ledger", "wolfkit.execution_report", "wolfkit.session_guard",
                   "wolfkit.reconciliation", "wolfkit.executor", "wolfkit.market_hours", "wolfkit.execute",
                   "wolfkit.runlock", "wolfkit.holdings")),
    ("intraday", ("wolfkit.intraday",)),
    ("reports", ("wolfkit.replay", "wolfkit.status", "wolfkit.status_sources", "wolfkit.pnl", "wolfkit.snapshots",
                 "wolfkit.backtest", "wolfkit.performance", "wolfkit.report", "wolfkit.tearsheet", "wolfkit.widgets",
                 "wolfkit.runs", "wolfkit.attribution", "wolfkit.sector_tilt", "wolfkit.learn", "wolfkit.sweep")),
    ("notebooks", ("wolfkit.notebooks", "wolfkit.sweep_report")),
    ("cli", ("wolfkit.cli",)),
]

# Edges that go against the layers, each with the reason it is tolerated for now. Empty: none today.
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _owner(name: str) -> str:
    """The module that defines `name` (a module, or a name inside one)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """Every wolfkit module `module` imports, anywhere in the file: top level, inside functions, and under
    `TYPE_CHECKING` (a type-only import is still a dependency, and the first step of a circle)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {_owner(a.name) for a in node.names if a.name.split(".")[0] == "wolfkit"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != "wolfkit":
                continue
            for a in node.names:  # `from wolfkit import calendar` imports the module wolfkit.calendar
                full = f"{base}.{a.name}"
                found.add(full if full in MODULES else _owner(base))
    found.discard(module)
    return found


def layer_of(module: str) -> int:
    best, rank = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, rank = p, i
    if module == "wolfkit" or best != "wolfkit":
        return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_imports.py")


GRAPH = {m: imports_of(m) for m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return path[path.index(v):] + [v]
            if v not in state and (c := visit(v)):
                return c
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_the_graph_reader_sees_every_kind_of_import():
    """The graph is only as good as the parser: top-level, function-local, type-only and `from wolfkit import x`."""
    assert "wolfkit.domain" in GRAPH["wolfkit.orders"]
    assert "wolfkit.orders" in GRAPH["wolfkit.widgets"]  # imported inside a method
    assert "wolfkit.runs" in GRAPH["wolfkit.report.identity"]  # imported under TYPE_CHECKING
    assert {"wolfkit.calendar", "wolfkit.notebooks"} <= GRAPH["wolfkit.cli.daily"]  # `from wolfkit import calendar, …`
    assert "wolfkit.diversify.candidates" in GRAPH["wolfkit.diversify.greedy"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_domain_imports_nothing_from_wolfkit():
    assert GRAPH["wolfkit.domain"] == set()
    assert GRAPH["wolfkit.errors"] == set()


def test_no_import_circles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_imports_flow_one_way_through_the_layers():
    names = [name for name, _ in LAYERS]
    upward = sorted(
        f"{src} ({names[layer_of(src)]}) imports {dst} ({names[layer_of(dst)]})"
        for src, dsts in GRAPH.items() for dst in dsts
        if layer_of(dst) > layer_of(src) and (src, dst) not in ALLOWED_UPWARD
    )
    assert not upward, "imports against the layers:\n  " + "\n  ".join(upward)
    stale = {e for e in ALLOWED_UPWARD if e[1] not in GRAPH.get(e[0], set())}
    assert not stale, f"allowed upward edges that no longer exist (remove them): {sorted(stale)}"


_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "wolfkit" or m.startswith("wolfkit.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\\n" + traceback.format_exc(limit=3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module imported first, with no other wolfkit module loaded (third-party modules stay loaded
    between them, which keeps this fast): an import order that only works by luck fails here."""
    run = subprocess.run([sys.executable, "-c", _ALONE, *MODULES], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
