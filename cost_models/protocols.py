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

Op kinds missing from `[ops]` are reported as not priced (and refused under --strict). A fixed-point
protocol also names how it truncates after each product (cost_models/fixed_point.py says where):

    truncation = { unknown_msb = "ot_truncation", known_msb = "ot_truncation_known_msb" }
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    truncation: dict[str, Handler] = field(default_factory=dict)  # "unknown_msb", "known_msb"; {} when exact

    @property
    def profile_constants(self) -> frozenset[str]:
        """Optional profile constants its handlers read, which both profiles must therefore provide."""
        handlers = (*self.ops.values(), *self.setup, self.poly, *self.truncation.values())
        needed = {name for handler in handlers for name in handler.profile_constants}
        if "ot_extension" in self.roles:
            needed.add(f"{self.roles['ot_extension']}_ot_per_byte")
        return frozenset(needed)


def load_protocol(name_or_path: str | Path) -> Protocol:
    path, doc = read_data_file("protocols", name_or_path, PROTOCOL_SCHEMA)
    ops_table = require(doc, "ops", dict, path)
    names = {_kind(key, path): _handler_name(value, f"ops.{key}", path) for key, value in ops_table.items()}
    setup_names = [_handler_name(v, "setup", path) for v in require(doc, "setup", list, path)]
    poly_name = _handler_name(doc.get("poly"), "poly", path)
    truncation_names = _truncation(doc.get("truncation", {}), path)
    used = [HANDLERS[n] for n in (*names.values(), *setup_names, poly_name, *truncation_names.values())]
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
        constants=parse_constants(doc, specs, path),
        truncation={which: HANDLERS[n] for which, n in truncation_names.items()})


TRUNCATION_KINDS = ("unknown_msb", "known_msb")


def _truncation(table, path: Path) -> dict[str, str]:
    if not isinstance(table, dict) or (table and sorted(table) != sorted(TRUNCATION_KINDS)):
        raise UserError(f"{path}: truncation must be a table with exactly {' and '.join(TRUNCATION_KINDS)}")
    return {which: _handler_name(table[which], f"truncation.{which}", path) for which in table}


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
