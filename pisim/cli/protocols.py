"""`pisim protocols`: the shipped protocols, how each prices every op kind, and its constants' sources."""
from __future__ import annotations

import argparse

from pisim.cli.datafiles import register_listing


def _handlers(protocol) -> list[str]:
    ops = ", ".join(f"{kind.value} -> {name}" for kind, name in protocol.op_handler_names.items())
    roles = ", ".join(f"{role} = {value}" for role, value in protocol.roles.items())
    return [f"ops: {ops}", *([f"roles: {roles}"] if roles else []),
            f"default profiles: server {protocol.server_profile}, client {protocol.client_profile}",
            f"file: {protocol.path.name}"]


def register(sub: argparse._SubParsersAction) -> None:
    from cost_models.protocols import load_protocol

    register_listing(sub, "protocols", "protocols", "protocols", load_protocol, _handlers)
