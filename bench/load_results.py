"""What the load through the local stack measured: latencies, failures and fan-outs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Samples:
    """Latencies in seconds plus every failure, by kind."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return len(self.seconds) + sum(self.errors.values())

    def describe_errors(self) -> str:
        if not self.errors:
            return "0 errors"
        listed = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.errors.items()))
        return f"{sum(self.errors.values())} errors ({listed})"


@dataclass
class FanOut:
    """Time from the trigger until the last listener heard ``sessionEnded``."""

    listeners: int
    received: int = 0
    last_s: float | None = None
    # Time until the trigger's own work returned (the sequential loop's last post).
    sender_s: float | None = None
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class ScenarioResult:
    listeners: int
    connected: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    joins: Samples = field(default_factory=Samples)
    # In-flight requests → round-trip samples.
    heartbeats: dict[int, Samples] = field(default_factory=dict)
    sequential: FanOut | None = None
    fan_out: FanOut | None = None
    concurrent: FanOut | None = None
    notes: list[str] = field(default_factory=list)
