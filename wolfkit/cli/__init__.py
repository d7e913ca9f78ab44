"""`wolfkit …` — every job runnable without Jupyter.

Exit codes: 0 success, 2 bad input or parameters, 3 infeasible constraints, 1 anything else.
Commands are thin: parse, load parameters, call the owning module, print a summary. The trading day's
commands are in `daily`, the research ones in `research`; both register on the one app (`app`).
"""

from __future__ import annotations

from rich.text import Text

from wolfkit.cli import daily, research  # noqa: F401  (registers the commands on the app)
from wolfkit.cli.app import app, err_console
from wolfkit.errors import WolfkitError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning WolfkitError into its exit code and a one-screen message.

    Usage errors (unknown option, missing argument) are typer's own: message and exit 2.
    """
    try:
        app(args=argv, prog_name="wolfkit")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except WolfkitError as e:
        err_console.print(Text.assemble(("error:", "bold red"), " ", str(e)), highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("aborted")
        return 1
    return 0
