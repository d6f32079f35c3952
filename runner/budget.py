"""Budgets: limits on one job (turns, cost, time) and on one runner invocation (cost, time).

A job that reaches a limit ends `partial` with the limit named as its reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_turns: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None


class RunSpend:
    """Cost and time shared by every job of one runner invocation (`run_budget`)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.cost_usd = 0.0
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def add(self, cost: float) -> None:
        with self._lock:
            self.cost_usd += cost

    def exceeded(self) -> str | None:
        lim = self.limits
        if lim.max_cost_usd is not None and self.cost_usd >= lim.max_cost_usd:
            return f"the run's budget of ${lim.max_cost_usd:g} is spent"
        if lim.max_seconds is not None and time.monotonic() - self.started >= lim.max_seconds:
            return f"the run's time limit of {lim.max_seconds:g} s is reached"
        return None
