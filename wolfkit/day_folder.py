"""The day folder `outputs/<YYYY-MM-DD>/`, an append-only audit record: the one way to claim a file
name in it (`claim_file`, numbered like the notebook re-runs or refused for a name the user chose, so
nothing there is ever overwritten) and its manifest `latest.json`, the pointer to the current plan that
`execute`, `intraday` and the execute notebook send when no orders file is named.

It sits at the bottom (no wolfkit import but `errors`) because writers at every layer use it: the scan
and orders commands, the executor's log, the notebook runner.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wolfkit.errors import BadInputError


def day_dir(outputs_dir: str | Path, session: date) -> Path:
    """The per-day folder `outputs/<YYYY-MM-DD>/`."""
    return Path(outputs_dir) / session.isoformat()


class OnTaken(StrEnum):
    """What `claim_file` does when the name (or one of its companions) is already taken."""

    NUMBER = "number"  # take the next free numbered name: opportunities.2.csv, orders.3.json, …
    REFUSE = "refuse"  # a name the user chose (--out): refuse it inside a day folder, name the fix


def numbered(path: Path, n: int) -> Path:
    """The n-th run's name: `path` itself for 1, else `.n` before the extension (`orders.json` →
    `orders.2.json`). The notebook runner numbers its re-runs the same way."""
    return path if n == 1 else path.with_name(f"{path.stem}.{n}{path.suffix}")


def in_day_folder(path: Path) -> bool:
    """True when `path` is a file of a per-day folder (its folder is named YYYY-MM-DD, as `day_dir` makes)."""
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.resolve().parent.name) is not None


def _taken(path: Path, companions: Sequence[str]) -> Path | None:
    """The first of `path` and its companions (`<stem><companion>` beside it) that exists."""
    for p in (path, *(path.with_name(path.stem + c) for c in companions)):
        if p.exists():
            return p
    return None


def claim_file(path: str | Path, *, on_taken: OnTaken = OnTaken.NUMBER, companions: Sequence[str] = (),
               start: int = 1, option: str = "--out", reserve: bool = True) -> Path:
    """The name to write `path` at, reserved by creating it empty (so two writers never share it); the
    one place every writer into a day folder gets its file name, so nothing there is ever overwritten.

    `companions` are the files written beside it (`.excluded.csv` → `opportunities.excluded.csv`); a
    name counts as taken when any of them exists. NUMBER takes the first free of `numbered(path, n)`
    for n = start, start+1, …; REFUSE (an explicit `option` such as --out) raises `BadInputError`
    naming the taken file and the fix when it is in a day folder, and outside one keeps the old
    behaviour (the file is written over). `reserve=False` only checks (a command refusing a name before
    its work, claiming it when it writes).
    """
    p = Path(path)
    if on_taken is OnTaken.REFUSE and not in_day_folder(p):
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    n = start
    while True:
        q = numbered(p, n)
        taken = _taken(q, companions)
        if taken is None and not reserve:
            return q
        if taken is None:
            try:
                with open(q, "x"):
                    return q
            except FileExistsError:
                taken = q
        if on_taken is OnTaken.REFUSE:
            free = n + 1
            while _taken(numbered(p, free), companions) is not None:
                free += 1
            raise BadInputError(
                f"{option} {p}: {taken} already exists in the day folder {p.parent}, and audit files are never "
                f"overwritten; pass a new name (e.g. {numbered(p, free)}) or leave out {option} to get the "
                "next numbered file")
        n += 1


@contextmanager
def claimed(path: str | Path, **how: Any) -> Iterator[Path]:
    """`claim_file(path, **how)` for a write that may still fail: the empty placeholder is removed when
    the body raises, so a failed command leaves no file behind and takes no number."""
    existed = Path(path).exists()  # written over outside a day folder: not ours to remove
    p = claim_file(path, **how)
    try:
        yield p
    except BaseException:
        if not (existed and p == Path(path)) and p.is_file() and not p.stat().st_size:
            p.unlink()
        raise


MANIFEST = "latest.json"
MANIFEST_SCHEMA = "wolfkit.latest/1"


class Manifest(BaseModel):
    """`outputs/<date>/latest.json`: the day's current plan (what `execute`, `intraday` and the execute
    notebook send when no orders file is named) and the newest scan. File names are relative to the day
    folder; a file outside it is kept as an absolute path."""

    model_config = ConfigDict(frozen=True)

    schema_: str = Field(MANIFEST_SCHEMA, alias="schema")
    session: date
    orders: str | None = Field(None, description="the current plan's orders file")
    opportunities: str | None = Field(None, description="the opportunities the current plan was built from")
    notebook: str | None = Field(None, description="the executed notebook of the run that wrote the plan")
    html: str | None = Field(None, description="its HTML audit report")
    run_id: str | None = Field(None, description="the plan's run id")
    command: str | None = Field(None, description="the command that wrote the plan: premarket | build")
    scan: str | None = Field(None, description="the newest `wolfkit scan` output (not a plan's until built)")
    updated_at: datetime


def _name_in(folder: Path, path: str | Path | None) -> str | None:
    if path is None:
        return None
    p = Path(path).resolve()
    return str(p.relative_to(folder.resolve())) if p.is_relative_to(folder.resolve()) else str(p)


def read_manifest(folder: str | Path) -> Manifest | None:
    """The day folder's manifest, or None when no command has written one there yet."""
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    try:
        return Manifest.model_validate_json(p.read_bytes())
    except ValueError as e:
        raise BadInputError(f"{p}: not a wolfkit manifest ({str(e).splitlines()[0]}); delete it and re-run "
                            "`wolfkit premarket`, or pass --orders") from None


def update_manifest(folder: str | Path, session: date, **files: str | Path | None) -> Path:
    """Set the named entries of the day's manifest (paths or run id), keep the others, write it atomically.

    The only file in a day folder that is rewritten: it is the pointer to the current plan, not a record."""
    folder = Path(folder)
    before = read_manifest(folder)
    values: dict[str, Any] = before.model_dump(by_alias=True) if before else {"session": session}
    for key, value in files.items():
        values[key] = value if key in ("run_id", "command") else _name_in(folder, value)
    values["updated_at"] = datetime.now(timezone.utc)
    doc = Manifest.model_validate(values)
    out = folder / MANIFEST
    tmp = out.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    folder.mkdir(parents=True, exist_ok=True)
    tmp.write_text(doc.model_dump_json(by_alias=True, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def current_plan(folder: str | Path) -> Path:
    """The orders file the day's manifest names (what to send when none is given); `BadInputError` with
    the fix when there is none."""
    folder = Path(folder)
    m = read_manifest(folder)
    if m is None or not m.orders:
        raise BadInputError(f"{folder / MANIFEST}: no current plan for this day (run `wolfkit premarket` or "
                            "`wolfkit build --out` into the day folder first), or pass --orders FILE")
    p = Path(m.orders)
    return p if p.is_absolute() else folder / p
