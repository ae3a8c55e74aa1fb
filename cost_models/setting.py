"""A pricing setting: protocol + network + client and server hardware + threads, loaded once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cost_models.handlers import Context
from cost_models.networks import Network, load_network
from cost_models.primitives import Parties
from cost_models.profiles import HardwareProfile, load_profile
from cost_models.protocols import Protocol, load_protocol
from pisim.errors import UserError


@dataclass(frozen=True)
class PricingSetting:
    protocol: Protocol
    network: Network
    client: HardwareProfile
    server: HardwareProfile
    threads: int
    context: Context

    def describe(self) -> dict[str, object]:
        return {"protocol": self.protocol.name, "network": self.network.name, "client_profile": self.client.name,
                "server_profile": self.server.name, "threads": self.threads}


def load_setting(protocol: str | Path = "delphi", network: str | Path = "lan",
                 client_profile: str | Path | None = None, server_profile: str | Path | None = None,
                 threads: int = 1) -> PricingSetting:
    """Names of shipped data files or paths to TOML files; None takes the protocol's default profile."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserError(f"threads must be a positive integer, got {threads!r}")
    proto = load_protocol(protocol)
    client = load_profile(client_profile or proto.client_profile)
    server = load_profile(server_profile or proto.server_profile)
    constants = {name: c.value for name, c in proto.constants.items()}
    context = Context(Parties(client, server, constants), proto.roles)
    return PricingSetting(proto, load_network(network), client, server, threads, context)
