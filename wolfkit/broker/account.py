"""Which account a broker trades: broker kind + account id + base URL, the key the ledger keeps accounts apart by.

The simulator, Alpaca paper and Alpaca live can all run the same plan (the same client order ids);
only the account key tells their ledger rows apart, so trying a plan on the simulator never blocks
paper. A broker says its key with an `account_key()` method (`AlpacaBroker` asks the API for the
account number); the edge that opens a simulated account knows where it lives (`sim_account`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from wolfkit.broker.gate import BrokerKind

IN_PROCESS = "in-process"  # the base URL of a simulated account that lives only in memory

_KIND_BY_NAME = {"alpaca-paper": BrokerKind.PAPER, "alpaca-live": BrokerKind.LIVE}


class AccountKey(BaseModel):
    """One broker account. Its text form (`kind:account_id@base_url`) is what the ledger stores."""

    model_config = ConfigDict(frozen=True)

    kind: BrokerKind
    account_id: str = Field(min_length=1, description="the broker's account number (the simulator: 'sim')")
    base_url: str = Field(min_length=1, description="where the account is reached (the simulator: its state file)")

    def __str__(self) -> str:
        return f"{self.kind}:{self.account_id}@{self.base_url}"


def sim_account(state_file: Path | None) -> AccountKey:
    """The simulated account kept in `state_file` (`sim_broker.json`), or one that lives in memory."""
    url = state_file.resolve().as_uri() if state_file is not None else IN_PROCESS
    return AccountKey(kind=BrokerKind.SIM, account_id="sim", base_url=url)


def account_key(broker: object) -> AccountKey:
    """The broker's account key: its own `account_key()` when it has one, else the in-process account of
    its kind (the simulator in memory, and wrappers around it, whatever they are called)."""
    own = getattr(broker, "account_key", None)
    if callable(own):
        key = own()
        if isinstance(key, AccountKey):
            return key
    kind = _KIND_BY_NAME.get(str(getattr(broker, "name", "")), BrokerKind.SIM)
    return AccountKey(kind=kind, account_id=str(kind), base_url=IN_PROCESS)
