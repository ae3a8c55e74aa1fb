"""The typed cost of one op (or of a whole model): per phase and per party, in seconds and bytes.

Conventions: `up` is client -> server and `down` is server -> client; `rounds` counts round trips
on the critical path (a one-way message is half a round trip); storage is what each party must
hold from the offline phase until the online phase uses it. Costs add, and scale by a factor
(masked layers pay in proportion to the ReLUs they keep).
"""
from __future__ import annotations

from dataclasses import dataclass, field

PHASES = ("offline", "online")  # a private inference's two phases, in the order they run
# What a latency can be asked for (`--phase`, a search's objective): one phase, or both back to back.
# Online first: it is what a user waits for once the input exists, and every default.
LATENCY_PHASES = ("online", "offline", "total")


@dataclass(frozen=True, slots=True)
class PhaseCost:
    client_s: float = 0.0
    server_s: float = 0.0
    up_bytes: float = 0.0
    down_bytes: float = 0.0
    rounds: float = 0.0

    def __add__(self, other: PhaseCost) -> PhaseCost:
        return PhaseCost(self.client_s + other.client_s, self.server_s + other.server_s,
                         self.up_bytes + other.up_bytes, self.down_bytes + other.down_bytes,
                         self.rounds + other.rounds)

    def compute_scaled(self, divisor: float) -> PhaseCost:
        return PhaseCost(self.client_s / divisor, self.server_s / divisor, self.up_bytes, self.down_bytes, self.rounds)

    def to_dict(self) -> dict[str, float]:
        return {"client_s": self.client_s, "server_s": self.server_s, "up_bytes": self.up_bytes,
                "down_bytes": self.down_bytes, "rounds": self.rounds}


@dataclass(frozen=True, slots=True)
class Cost:
    offline: PhaseCost = field(default_factory=PhaseCost)
    online: PhaseCost = field(default_factory=PhaseCost)
    client_storage_bytes: float = 0.0
    server_storage_bytes: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.offline + other.offline, self.online + other.online,
                    self.client_storage_bytes + other.client_storage_bytes,
                    self.server_storage_bytes + other.server_storage_bytes)

    def phase(self, name: str) -> PhaseCost:
        return self.offline if name == "offline" else self.online

    def compute_scaled(self, divisor: float) -> Cost:
        return Cost(self.offline.compute_scaled(divisor), self.online.compute_scaled(divisor),
                    self.client_storage_bytes, self.server_storage_bytes)

    def to_dict(self) -> dict:
        return {"offline": self.offline.to_dict(), "online": self.online.to_dict(),
                "client_storage_bytes": self.client_storage_bytes, "server_storage_bytes": self.server_storage_bytes}


ZERO = Cost()


def offline(**amounts: float) -> Cost:
    return Cost(offline=PhaseCost(**amounts))


def online(**amounts: float) -> Cost:
    return Cost(online=PhaseCost(**amounts))


def in_phase(phase: str, **amounts: float) -> Cost:
    return offline(**amounts) if phase == "offline" else online(**amounts)


def stored(client_bytes: float = 0.0, server_bytes: float = 0.0) -> Cost:
    return Cost(client_storage_bytes=client_bytes, server_storage_bytes=server_bytes)
