"""Client order ids: a planned order's base id and its numbered resubmissions (`<base>-r<n>`).

Alpaca refuses a reused client id forever (even after a cancel), so every resubmission of one
planned order — a resize after a 403, an intraday replacement — gets the next attempt number. This
module is the one place that writes and reads that suffix.
"""

from __future__ import annotations

import re

MAX_LEN = 128  # Alpaca's limit on a client order id
_ATTEMPT = re.compile(r"(.+)-r([1-9][0-9]*)")


def attempt_client_id(base: str, attempt: int) -> str:
    """The client id of attempt `attempt` of the order whose base id is `base` (attempt 0 is `base`),
    kept within 128 characters (the base is cut, never the suffix)."""
    if attempt == 0:
        return base
    suffix = f"-r{attempt}"
    return base[: MAX_LEN - len(suffix)] + suffix


def attempt_number(client_id: str) -> int:
    """The attempt number in a client id (its `-rN` suffix; 0 for a base id)."""
    m = _ATTEMPT.fullmatch(client_id)
    return int(m.group(2)) if m else 0


def is_attempt_of(base: str, client_id: str) -> bool:
    """True when `client_id` is `base` or one of its attempt ids."""
    return client_id == base or attempt_client_id(base, attempt_number(client_id)) == client_id


def plan_attempt(client_id: str, bases: set[str]) -> tuple[str, int] | None:
    """(base id, attempt) when `client_id` is attempt n of one of `bases`; None for any other id
    (a bracket leg, the intraday engine's own orders)."""
    if client_id in bases:
        return client_id, 0
    m = _ATTEMPT.fullmatch(client_id)
    if m is None:
        return None
    n = int(m.group(2))
    candidates = [m.group(1)] if m.group(1) in bases else (bases if len(client_id) == MAX_LEN else ())
    return next(((b, n) for b in candidates if attempt_client_id(b, n) == client_id), None)
