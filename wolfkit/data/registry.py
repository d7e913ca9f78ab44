"""Which `DataProvider` a parameter set asks for (`data.source`), restricted to `data.symbols`.

Why here: the source names in the parameters (`demo`, `demo:N`, `csv`, `parquet`, `alpaca`) map
to provider classes in one place, so notebooks, the CLI and tests build providers the same way.
Relative file paths in the parameters resolve against the project root (the folder holding
`parameters/`, see `wolfkit.config.project_root`), so `../shared/data/…` means the same file from
the command line at the root and from a notebook opened in `notebooks/`.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Sequence

import pandas as pd

from wolfkit.config import Params, project_path
from wolfkit.data.base import DataProvider
from wolfkit.errors import BadInputError


def provider_for(params: Params) -> DataProvider:
    """The provider `params.data.source` names, limited to `params.data.symbols` when set."""
    data = params.data
    base, _, size = data.source.partition(":")
    provider: DataProvider
    if base == "demo":
        from wolfkit.data.demo import DemoMarket

        provider = DemoMarket(seed=data.seed, size=int(size) if size else None)
    elif base in ("csv", "parquet"):
        from wolfkit.data.files import FileProvider

        # DataParams refuses csv/parquet without both paths, so neither is None here
        assert data.bars_path is not None and data.universe_path is not None
        provider = FileProvider(_path(data.bars_path), _path(data.universe_path),
                                fmt="csv" if base == "csv" else "parquet", bad_rows=data.bad_rows)
    elif base == "alpaca":
        from wolfkit.data.alpaca import AlpacaProvider

        provider = AlpacaProvider(universe_path=data.universe_path and _path(data.universe_path),
                                  cache_dir=_path(data.cache_dir))
    else:  # the config validator admits only the names above
        raise BadInputError(f"data.source {data.source!r}: use demo, demo:N, csv, parquet or alpaca")
    return Restricted(provider, data.symbols) if data.symbols else provider


def check_source(params: Params) -> None:
    """Refuse a data source that cannot load — its files missing, Alpaca without keys or a universe file —
    before a command starts a notebook kernel, whose failure would be exit 1 and a failed notebook
    instead of exit 2 naming the key and the fix. Cheap: no bars are read and no request is made."""
    data = params.data
    base = data.source.partition(":")[0]
    if base in ("csv", "parquet"):
        for key, given in (("data.bars_path", data.bars_path), ("data.universe_path", data.universe_path)):
            if given is not None and not _path(given).is_file():
                raise BadInputError(f"{key}: {given} not found (looked at {_path(given)}); point {key} at an "
                                    "existing file (relative paths are relative to the project folder)")
    elif base == "alpaca":
        provider_for(params)  # reads the keys from the environment and the universe file; sends nothing


def _path(p: str) -> Path:
    """A parameter's path, relative ones against the project root; normalised, so messages and
    data_quality.csv name the file plainly."""
    return project_path(p).resolve()


class Restricted:
    """A provider whose universe is cut down to chosen symbols (`data.symbols`)."""

    def __init__(self, provider: DataProvider, symbols: Sequence[str]) -> None:
        universe = provider.universe()
        wanted = list(dict.fromkeys(s.strip().upper() for s in symbols))
        unknown = [s for s in wanted if s not in set(universe["symbol"])]
        if unknown:
            raise BadInputError(
                f"data.symbols: {unknown[:10]} not in the {provider.name} universe; "
                "remove them or pick a source/universe file that lists them"
            )
        self.inner = provider
        self.name = provider.name
        self.synthetic = provider.synthetic
        self.has_ohlc = provider.has_ohlc
        self.quarantined = getattr(provider, "quarantined", None)  # rows a files provider left out
        self._universe = universe[universe["symbol"].isin(wanted)].reset_index(drop=True)

    def universe(self) -> pd.DataFrame:
        return self._universe.copy()

    def daily_bars(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return self.inner.daily_bars(symbols, start, end)

    def minute_bars(self, symbols: Sequence[str], session: date) -> pd.DataFrame:
        return self.inner.minute_bars(symbols, session)

    def latest_quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        return self.inner.latest_quotes(symbols, as_of)
