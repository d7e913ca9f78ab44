"""Reconciliation: the broker's own list of a run's orders decides what exists, whatever the ledger says.

The executor (`wolfkit.executor`) asks the broker what it holds through its order list, not one
look-up per order: a look-up per planned order doubles the requests of a batch (150 orders need
more than Alpaca's 200 requests a minute), while the list answers for the whole run in
one page per 500 orders.

- **At the start** one listing (`Broker.orders_by_prefix`: client ids with the plan's common prefix,
  submitted since a day before the plan was made; Alpaca's `GET /v2/orders?status=all&after=…
  &direction=asc&limit=500`, paged on `submitted_at`). Each planned order whose base id or any
  `-rN` attempt is listed adopts its highest attempt (`reconcile`), so a lost, moved or stale ledger,
  or a crash between the broker's acknowledgement and the ledger's write, never causes a
  resubmission.
- **After an ambiguous answer** (5xx, timeout, dropped connection) "does the broker hold this client
  id?" is answered by a listing that started after the answer came back (`RunListing.find`);
  questions asked while a listing is under way share the next one. A listing that does not show the
  id leads to a resend under the SAME id, which is safe: a client id is unique at the broker, so a
  resend of an order that exists is answered 422 and adopted.
- **A ledger intent the listing does not show** (an attempt written before a crash, never accepted)
  is sent again under its own id — safe for the same reason. Only an order the ledger says the
  broker accepted, and the listing does not show, is asked for by client id before the mismatch is
  reported (a list is a window, a look-up is not).
"""

from __future__ import annotations

import itertools
import os
import threading
from datetime import timedelta
from typing import Any, Callable

from wolfkit.broker.base import Broker, BrokerOrder
from wolfkit.calendar import NY
from wolfkit.domain import attempt_client_id, plan_attempt
from wolfkit.errors import BrokerError
from wolfkit.ledger import EventKind, Ledger, LedgerOrder, OrderState
from wolfkit.orders import OrderPlan, PlannedOrder

# The broker's order list is read from this long before the plan was created: the clock of the
# machine that built the plan and the broker's may disagree, and a day more costs one page at most.
LIST_LOOKBACK = timedelta(days=1)


class RunListing:
    """The run's orders as the broker last listed them, by client id.

    `call` is the executor's rate-limited, retrying path (`Executor.call`); every listing goes
    through it, so listings count against the same request budget as everything else.
    """

    def __init__(self, plan: OrderPlan, broker: Broker, call: Callable[..., Any]):
        self.bases = frozenset(po.client_order_id for po in plan.orders)
        self.prefix = os.path.commonprefix(sorted(self.bases))
        made = plan.created_at
        self.since = (made if made.tzinfo else made.replace(tzinfo=NY)) - LIST_LOOKBACK
        self._broker, self._call = broker, call
        self._orders: dict[str, BrokerOrder] = {}
        self._tickets = itertools.count()  # orders questions and listings in time (thread-safe `next`)
        self._listed = -1  # the ticket taken when the latest listing started
        self._lock = threading.Lock()
        self.listings = 0  # how many listings this execution made

    def refresh(self) -> None:
        """List the run's orders now."""
        with self._lock:
            self._list()

    def _list(self) -> None:
        started = next(self._tickets)
        listed = self._call(self._broker.orders_by_prefix, self.prefix, self.since)
        self._orders = {o.client_order_id: o for o in listed}
        self._listed = started
        self.listings += 1

    def find(self, client_id: str) -> BrokerOrder | None:
        """The order with `client_id` as a listing that started after this question shows it (None:
        not listed). Used after an ambiguous answer: the answer came back before the question, so a
        listing started after the question sees what the broker accepted."""
        asked = next(self._tickets)
        with self._lock:
            if self._listed < asked:
                self._list()
            return self._orders.get(client_id)

    def known(self, client_id: str) -> BrokerOrder | None:
        """The order with `client_id` in the latest listing, without asking the broker."""
        with self._lock:
            return self._orders.get(client_id)

    def held(self) -> dict[str, dict[int, BrokerOrder]]:
        """The latest listing by planned client id and attempt number (only the plan's own ids)."""
        with self._lock:
            listed = list(self._orders.values())
        held: dict[str, dict[int, BrokerOrder]] = {}
        for o in listed:
            hit = plan_attempt(o.client_order_id, self.bases)
            if hit is not None:
                held.setdefault(hit[0], {})[hit[1]] = o
        return held


def ledger_row(ledger: Ledger, run: str, base: str) -> LedgerOrder:
    """The ledger's row of a registered planned order (a missing row is a bug, not bad input)."""
    row = ledger.order(run, base)
    if row is None:
        raise BrokerError(f"{base}: no ledger row for this planned order of run {run}")
    return row


def reconcile(ledger: Ledger, run: str, po: PlannedOrder, row: LedgerOrder, held: dict[int, BrokerOrder],
              lookup: Callable[[str], BrokerOrder | None]) -> LedgerOrder | None:
    """Bring the ledger row in line with the broker; None when the order still has to be sent.

    `held` is what the listing shows for this planned order (attempt -> order): its highest attempt
    is adopted whatever the ledger says, and the ledger's attempt becomes the broker's. An intent the
    listing does not show is sent again under its own id (the broker answers 422 if it holds it, and
    the order is adopted). Only a row the ledger says the broker accepted, and the listing does not
    show, is asked for by client id (`lookup`) before the mismatch is reported.
    """
    base = po.client_order_id
    if held:
        top = max(held)
        found = held[top]
        if (row.client_order_id, row.broker_order_id, row.state, row.filled_qty, row.attempt) != (
                found.client_order_id, found.id, OrderState.of(found.status), found.filled_qty, top):
            ledger.record_ack(run, base, found, event=EventKind.RECONCILED, attempt=top)
        return ledger_row(ledger, run, base)
    if row.state in (OrderState.REJECTED, OrderState.SKIPPED):
        return row  # a deliberate final decision from an earlier execution
    if not row.state.at_broker:
        return None
    for a in range(row.attempt, -1, -1):  # the ledger and the listing disagree: ask by id
        got = lookup(attempt_client_id(base, a))
        if got is not None:
            ledger.record_ack(run, base, got, event=EventKind.RECONCILED, attempt=a)
            return ledger_row(ledger, run, base)
    raise BrokerError(
        f"{po.symbol}: the ledger says order {row.client_order_id} was accepted (broker id "
        f"{row.broker_order_id}) on account {ledger.account} but that account does not know it: "
        "its orders were reset (a deleted or replaced sim_broker.json, a reset paper account) or the keys "
        "reach another account with the same number. Nothing more was sent. If the account was reset on "
        f"purpose, move the ledger {ledger.path} aside (or set execution.ledger_path to a new file) and "
        "run again; otherwise point APCA_API_BASE_URL and the keys at the account the plan ran on")
