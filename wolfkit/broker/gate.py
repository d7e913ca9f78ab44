"""The live gate: which broker a run may use, and which trading URL it may send orders to.

Real money moves only when BOTH switches are on — the `--live` flag (notebooks: `live = True`) AND
`execution.broker: live` in the parameters. The trading URL is checked against them before anything
else happens and before any request, because `APCA_API_BASE_URL` is set by the user's shell, not by
wolfkit: with Alpaca's standard setup it points at the live endpoint even when paper is meant.

- Alpaca's paper URL and loopback URLs (127.0.0.0/8, localhost, ::1: `wolfkit emulator`) are paper.
- Every other URL — Alpaca's live URL, or any other host — counts as live and needs both switches.
- With both switches, orders go to Alpaca's live URL only (a paper or other URL is refused, so a
  "live" run never silently trades elsewhere).

`AlpacaBroker` calls `trading_url` when it builds its trading client, so no path builds one ungated;
`broker_kind_for` runs it up front so the commands refuse before reading any other input.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from urllib.parse import urlsplit

from wolfkit.config import Params
from wolfkit.errors import BadInputError

BASE_URL_ENV = "APCA_API_BASE_URL"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
SWITCHES = "the --live flag AND `execution.broker: live` in the parameters"


class BrokerKind(StrEnum):
    """Where a run's orders go: the simulated account, Alpaca paper, or Alpaca live (real money)."""

    SIM = "sim"
    PAPER = "paper"
    LIVE = "live"


class Endpoint(StrEnum):
    """What a trading URL reaches."""

    LOOPBACK = "loopback"  # this machine: the emulator
    PAPER = "paper"  # Alpaca's paper endpoint
    LIVE = "live"  # anything else: Alpaca's live endpoint or an unknown host, treated as real money


def normalize_url(url: str) -> str:
    """Strip whitespace, trailing slashes and a trailing `/v2` (alpaca-py appends `/v2/...` itself)."""
    url = url.strip().rstrip("/")
    return url[: -len("/v2")] if url.endswith("/v2") else url


def _shown(url: str) -> str:
    """The URL without any user:password part (a URL never carries keys into a message)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def classify(url: str) -> Endpoint:
    """Loopback, Alpaca paper, or live (everything else, including URLs that do not parse)."""
    url = normalize_url(url)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return Endpoint.LIVE
    if parts.scheme not in ("http", "https") or not host:
        return Endpoint.LIVE
    if url.lower() == PAPER_URL:
        return Endpoint.PAPER
    if host == "localhost":
        return Endpoint.LOOPBACK
    try:
        return Endpoint.LOOPBACK if ipaddress.ip_address(host).is_loopback else Endpoint.LIVE
    except ValueError:
        return Endpoint.LIVE


def trading_url(live: bool, url: str | None = None) -> str:
    """The trading URL a run may use: `url`, else `APCA_API_BASE_URL`, else Alpaca's paper or live URL.

    `live` means both switches are on (`broker_kind_for` checked them). A live-class URL without them,
    or anything but Alpaca's live URL with them, is a `BadInputError` naming the URL and the switches.
    """
    given = url if url is not None else os.environ.get(BASE_URL_ENV, "")
    given = normalize_url(given) if given.strip() else ""
    source = "the broker's base_url" if url is not None else BASE_URL_ENV
    if not given:
        return LIVE_URL if live else PAPER_URL
    kind = classify(given)
    if live:
        if given.lower() != LIVE_URL:
            raise BadInputError(
                f"{source}={_shown(given)} is not Alpaca's live trading URL, but live trading is switched on "
                f"({SWITCHES}); live orders go to {LIVE_URL} only: unset {BASE_URL_ENV} or set it to "
                f"{LIVE_URL}, or drop --live to trade paper; nothing was sent"
            )
        return LIVE_URL
    if kind is Endpoint.LIVE:
        raise BadInputError(
            f"{source}={_shown(given)} is a live trading URL (neither Alpaca's paper URL {PAPER_URL} nor this "
            f"machine), and live trading needs BOTH switches: {SWITCHES}; to trade paper set {BASE_URL_ENV}="
            f"{PAPER_URL} (or unset it); nothing was sent"
        )
    return given


def broker_kind_for(params: Params, broker_kind: str | None = None, live: bool = False) -> BrokerKind:
    """The broker to use (`--broker`, else `execution.broker`), gated: live needs BOTH `--live` and
    `execution.broker: live`, and an Alpaca broker's trading URL must match (see `trading_url`).
    Run it first, before reading any other input: exit 2 otherwise, and nothing is sent."""
    params_broker = params.execution.broker
    chosen = broker_kind or params_broker
    try:
        kind = BrokerKind(chosen)
    except ValueError:
        raise BadInputError(f"--broker {chosen!r}: use sim, paper or live") from None
    if kind is BrokerKind.LIVE or live:
        if not (live and kind is BrokerKind.LIVE and params_broker == BrokerKind.LIVE):
            raise BadInputError(
                f"live trading needs BOTH switches: {SWITCHES} "
                f"(got --live={'yes' if live else 'no'}, --broker {kind}, execution.broker: {params_broker}); "
                "nothing was submitted")
        from wolfkit.market_hours import CLOCK_ENV  # here: the session rule's module imports the brokers

        if os.environ.get(CLOCK_ENV, "").strip():
            raise BadInputError(f"{CLOCK_ENV} is set ({os.environ[CLOCK_ENV].strip()!r}): a fixed clock is for tests "
                                f"and rehearsals, never for the live account; unset {CLOCK_ENV}; nothing was submitted")
    if kind is not BrokerKind.SIM:
        trading_url(live=kind is BrokerKind.LIVE)
    return kind
