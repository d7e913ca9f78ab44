"""Brokers behind one `Broker` protocol: simulated (embedded default), Alpaca (paper/live), and an
Alpaca-compatible HTTP emulator backed by the simulated broker."""

from wolfkit.broker.base import (
    AccountInfo,
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    Fill,
    InsufficientBuyingPower,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    RateLimited,
    WashTradeRejected,
)

__all__ = [
    "AccountInfo", "Broker", "BrokerOrder", "BrokerUnavailable", "DuplicateClientOrderId", "Fill",
    "InsufficientBuyingPower", "OrderNotFound", "OrderRejected", "OrderRequest", "OrderStatus",
    "OrderUpdate", "Position", "Quote", "RateLimited", "WashTradeRejected",
]
