"""Protocols as data: which handler prices each op kind, which party plays which role, and the
protocol's constants (each with value, unit and source).

Schema `pisim.protocol/1`:

    schema = "pisim.protocol/1"
    name = "delphi"
    description = "..."
    server_profile = "delphi-epyc7502"     # defaults for --server-profile / --client-profile
    client_profile = "atom-z8350"
    setup = ["he_keys"]                    # handlers paid once per inference
    poly = "beaver_square"                 # how a degree-2 polynomial activation is computed
    [ops]                                  # op kind -> handler (cost_models/handlers.py)
    conv2d = "he_linear_preprocessed"
    [roles]
    garbler = "server"
    [constants.relu_and_gates]
    value = 496.75
    unit = "AND gates"
    source = "..."

Op kinds missing from `[ops]` are reported as not priced (and refused under --strict).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cost_models.constants import Constant, ConstantSpec, parse_constants, read_data_file, require
from cost_models.handlers import HANDLERS, Handler
from pisim.errors import UserError
from pisim.graph import OpKind

PROTOCOL_SCHEMA = "pisim.protocol/1"


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    path: Path
    server_profile: str
    client_profile: str
    ops: dict[OpKind, Handler]
    op_handler_names: dict[OpKind, str]
    setup: tuple[Handler, ...]
    poly: Handler
    roles: dict[str, str]
    constants: dict[str, Constant]


def load_protocol(name_or_path: str | Path) -> Protocol:
    path, doc = read_data_file("protocols", name_or_path, PROTOCOL_SCHEMA)
    ops_table = require(doc, "ops", dict, path)
    names = {_kind(key, path): _handler_name(value, f"ops.{key}", path) for key, value in ops_table.items()}
    setup_names = [_handler_name(v, "setup", path) for v in require(doc, "setup", list, path)]
    poly_name = _handler_name(doc.get("poly"), "poly", path)
    used = [HANDLERS[n] for n in (*names.values(), *setup_names, poly_name)]
    specs: dict[str, ConstantSpec] = {}
    for handler in used:
        specs.update(handler.constants)
    roles = _roles(doc.get("roles", {}), used, path)
    return Protocol(
        name=require(doc, "name", str, path), description=require(doc, "description", str, path), path=path,
        server_profile=require(doc, "server_profile", str, path),
        client_profile=require(doc, "client_profile", str, path),
        ops={kind: HANDLERS[n] for kind, n in names.items()}, op_handler_names=names,
        setup=tuple(HANDLERS[n] for n in setup_names), poly=HANDLERS[poly_name], roles=roles,
        constants=parse_constants(doc, specs, path))


def _kind(key: str, path: Path) -> OpKind:
    try:
        return OpKind(key)
    except ValueError:
        raise UserError(f"{path}: ops.{key} is not an op kind (known: {', '.join(k.value for k in OpKind)})") from None


def _handler_name(value, where: str, path: Path) -> str:
    if not isinstance(value, str) or value not in HANDLERS:
        raise UserError(f"{path}: {where} = {value!r} is not a handler (known: {', '.join(HANDLERS)})")
    return value


def _roles(table, handlers: list[Handler], path: Path) -> dict[str, str]:
    if not isinstance(table, dict):
        raise UserError(f"{path}: [roles] must be a table")
    needed: dict[str, tuple[str, ...]] = {}
    for handler in handlers:
        needed.update(handler.roles)
    for role, allowed in needed.items():
        if table.get(role) not in allowed:
            raise UserError(f"{path}: roles.{role} must be one of {', '.join(allowed)}, got {table.get(role)!r}")
    unknown = sorted(set(table) - set(needed))
    if unknown:
        raise UserError(f"{path}: roles not used by its handlers: {', '.join(unknown)}")
    return {role: table[role] for role in needed}
