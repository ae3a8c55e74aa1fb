"""`pisim networks`: the shipped network profiles (bandwidth each way, RTT) and their sources."""
from __future__ import annotations

import argparse

from pisim.cli.datafiles import register_listing


def register(sub: argparse._SubParsersAction) -> None:
    from cost_models.networks import load_network

    register_listing(sub, "networks", "networks", "network profiles", load_network,
                     lambda network: ["up = client -> server, down = server -> client", f"file: {network.path.name}"])
