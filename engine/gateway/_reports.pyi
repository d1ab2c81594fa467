"""Type stubs for the compiled report builder (engine/gateway/_reports.pyx): the same face as
engine.gateway.reports.ReportBuilder, the same frames byte for byte."""
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

class FastReportBuilder:
    name: ClassVar[str]                                  # "gw"
    sections: ClassVar[dict[str, np.dtype]]              # "gw.accounts", "gw.fills"
    pending: list[Any]            # (account, report_seq, frame), or with runs:
                                  # (account, first report_seq, last report_seq, frames joined)
    recovered: Callable[..., None] | None    # (account, report_seq, frame), or with runs:
                                             # (account, first, last, frames joined)
    runs: bool
    venues: dict[int, str]                   # venue id -> name (others: their number)

    def __init__(self, recovered: Callable[..., None] | None = None,
                 runs: bool = False, venues: Mapping[int, str] | None = None) -> None: ...
    @property
    def last(self) -> dict[int, int]:
        """account -> last report_seq issued (a copy)."""
    @property
    def fills(self) -> dict[int, list[int]]:
        """order id -> [cum_qty, cum_notional] of open orders with fills, and -(a live routed
        order's id) -> [its total qty, its fees so far] (a copy)."""
    def next_report_seq(self, account: int) -> int: ...
    def take(self) -> list[Any]: ...
    def on_batch(self, commands: Any, events: np.ndarray, live: bool) -> None: ...
    def export_state(self) -> dict[str, np.ndarray]: ...
    def load_state(self, state: dict[str, np.ndarray]) -> None: ...

def _true_divide(a: int, b: int) -> float: ...
