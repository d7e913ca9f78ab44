"""The keys file: the Alpaca keys (and endpoints) a scheduled command loads with `wolfkit --env-file F`.

Why a file wolfkit reads itself, rather than one the shell sources: every schedule (cron, systemd,
Airflow) then runs the same command line, and a wrong file is wolfkit's exit 2 naming the file, the
line and the fix — not a shell error with its own exit code, or keys silently missing until the first
request. The format is the shell's (`KEY=value`, optionally `export KEY=value`, `#` comments, quotes),
so the same file can still be sourced by hand. Only the variables wolfkit reads are accepted: a typo
must not leave a key unset, and the wall clock (`WOLFKIT_NOW`) never comes from a keys file, where it
could be forgotten. Values are never printed.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from wolfkit.errors import BadInputError

KEY_ID, SECRET = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
KEYS_FILE_VARS = (KEY_ID, SECRET, "APCA_API_BASE_URL", "APCA_API_DATA_URL")
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_FIX = f"write one `export NAME=value` a line, NAME one of {', '.join(KEYS_FILE_VARS)}"


def _value(raw: str) -> str | None:
    """The value as the shell would read it (one quoted or bare word); None when it is not one."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return None if raw[0] in inner else inner
    return None if re.search(r"\s|['\"$`;&|<>]", raw) else raw


def read_keys_file(path: Path) -> dict[str, str]:
    """The variables `path` sets, checked: the file exists and is text, every line is `[export] NAME=value`
    with NAME one of `KEYS_FILE_VARS`, none given twice, and both keys present and non-empty.
    Any problem is a `BadInputError` (exit 2) naming the file, the line and the fix."""
    if not path.is_file():
        raise BadInputError(f"{path}: keys file not found; create it (chmod 600) with `export {KEY_ID}=…` and "
                            f"`export {SECRET}=…`, or pass the right path to --env-file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(f"{path}: byte {e.start} is not UTF-8 text; save the keys file as UTF-8") from None
    found: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise BadInputError(f"{path}: line {n}: not `NAME=value`; {_FIX}")
        name, value = m.group(1), _value(m.group(2))
        if name not in KEYS_FILE_VARS:
            raise BadInputError(f"{path}: line {n}: {name} is not a variable wolfkit reads from a keys file; {_FIX}")
        if name in found:
            raise BadInputError(f"{path}: line {n}: {name} is set twice; keep one line")
        if value is None:
            raise BadInputError(f"{path}: line {n}: the value of {name} is not one word; quote it ('…')")
        found[name] = value
    missing = [k for k in (KEY_ID, SECRET) if not found.get(k)]
    if missing:
        raise BadInputError(f"{path}: {' and '.join(missing)} missing or empty; add `export NAME=…` with your "
                            "Alpaca keys (paper keys for paper trading)")
    return found


def readable_by_others(path: Path) -> bool:
    """True when the group or others may read `path` (a keys file should be `chmod 600`)."""
    return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
