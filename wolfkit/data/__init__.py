"""Market data: bars, quotes and universe metadata behind one small `DataProvider` interface.

Providers: `demo` (embedded, offline, synthetic, deterministic from a seed), `csv`/`parquet` (local
files, long OHLCV or wide close-only), `alpaca` (alpaca-py's StockHistoricalDataClient, cached on disk).
"""

from wolfkit.data.base import BAR_COLUMNS, QUOTE_COLUMNS, UNIVERSE_COLUMNS, DataProvider

__all__ = ["BAR_COLUMNS", "QUOTE_COLUMNS", "UNIVERSE_COLUMNS", "DataProvider", "get_provider"]


def get_provider(params):
    """The provider that `params.data.source` names."""
    from wolfkit.data.registry import provider_for

    return provider_for(params)
