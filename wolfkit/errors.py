"""Errors that reach the user: each carries the exit code the command line returns.

2 — bad input or parameters (the message names the file, the row or field, and the fix);
3 — infeasible constraints (the message names the binding constraint);
1 — anything else.
"""

from __future__ import annotations


class WolfkitError(Exception):
    """Base for every error wolfkit reports to a user; `exit_code` is the CLI's exit status."""

    exit_code = 1


class BadInputError(WolfkitError):
    """A file, row, field or parameter is wrong; the message says where and how to fix it."""

    exit_code = 2


class InfeasibleError(WolfkitError):
    """The constraints cannot all hold; the message names the binding one and the best achievable."""

    exit_code = 3


class BrokerError(WolfkitError):
    """A broker refused or failed a request in a way the caller must handle."""

    exit_code = 1
