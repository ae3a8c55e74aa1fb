"""A pricing setting: protocol + network + client and server hardware + threads, loaded once."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Mapping

from cost_models.handlers import Context
from cost_models.networks import Network, load_network
from cost_models.profiles import HardwareProfile, load_profile
from cost_models.protocols import Protocol, load_protocol
from pisim.errors import UserError


@dataclass(frozen=True)
class PricingSetting:
    """What `price` needs besides the graph. The handlers' `context` is derived from these fields, never
    stored beside them, so a setting with other constants (`with_constants`) cannot disagree with itself."""

    protocol: Protocol
    network: Network
    client: HardwareProfile
    server: HardwareProfile
    threads: int

    @cached_property
    def context(self) -> Context:
        return Context.build(self.client, self.server, self.protocol.constants, self.protocol.roles)

    def with_constants(self, overrides: Mapping[str, float], source: str) -> PricingSetting:
        """This setting with some of its protocol's constants replaced; `source` says where the new values
        come from (every constant names one). A name the protocol does not have is refused."""
        unknown = sorted(set(overrides) - set(self.protocol.constants))
        if unknown:
            raise UserError(f"protocol {self.protocol.name} has no constant {', '.join(unknown)} to override")
        constants = {name: replace(c, value=float(overrides[name]), source=source, repeats=None, spread=None)
                     if name in overrides else c for name, c in self.protocol.constants.items()}
        return replace(self, protocol=replace(self.protocol, constants=constants))

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
    for profile in (client, server):
        lacking = sorted(proto.profile_constants - set(profile.constants))
        if lacking:
            raise UserError(f"{profile.path}: protocol {proto.name} needs profile constants it lacks: "
                            f"{', '.join(lacking)} (pisim calibrate --protocol {proto.name} measures them)")
    return PricingSetting(proto, load_network(network), client, server, threads)
