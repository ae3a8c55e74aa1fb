"""torch.export archives (.pt2) read without unpickling anything but plain tensors.

`torch.export.load` fully unpickles in three places: sample inputs the restricted unpickler refuses
(a silent fallback), weights and constants flagged `use_pickle`, and opaque
(custom-object) constants; it also loads AOTInductor shared libraries and evaluates symbolic shapes with
`sympy.sympify`, which calls `eval`. Here the archive is assembled from its parts instead: the program
JSON is checked (only torch operators as call targets, only arithmetic in shape expressions), weights and
constants become meta tensors of the declared shapes once their records are shown to hold them, sample
inputs load with `weights_only=True` or the file is refused, and anything that needs pickle is refused.
torch's deserializer then builds the program from those already-loaded parts, so it never unpickles.
"""
from __future__ import annotations

import io
import json
import math
import operator
import re
from typing import Any

import torch
from torch._export.serde import schema
from torch._export.serde.serialize import (_SERIALIZE_TO_TORCH_DTYPE, _SYM_OPS, ExportedProgramDeserializer,
                                           _dict_to_dataclass)
from torch.export.pt2_archive import constants as layout

from pisim.archive import Archive, check_records, open_nested
from pisim.errors import UserError

MODEL = "model"  # torch.export.save names the one program it writes "model"
MAX_SYM_EXPR_CHARS = 10_000  # symbolic shapes torch writes are a few dozen characters
# The functions torch's deserializer hands sympy (GraphModuleDeserializer.deserialize), the sympy classes and
# symbol assumptions torch's serializer writes (sympy.srepr: "Mul(Integer(16), Symbol('s16', positive=True,
# integer=True))"), and sympy's relational and logic names; any other name in a shape expression is refused.
_SYM_NAMES = frozenset("""FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift
    RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt
    RoundToInt RoundDecimal ToFloat Identity Max Min Abs Eq Ne Lt Le Gt Ge And Or Not True False oo zoo
    Integer Rational Float Symbol Dummy Add Mul Pow Mod Infinity NegativeInfinity One Zero NegativeOne Half
    positive negative nonnegative nonpositive integer real finite infinite zero nonzero even odd rational
    commutative""".split())
_SYM_TOKEN = re.compile(r"\s*(?:(\d+\.\d+(?:e[-+]?\d+)?|\d+|'[a-z]+\d+')|([A-Za-z_]\w*)"
                        r"|(\*\*|//|==|!=|<=|>=|[-+*/%(),<>&|~=]))")
_SYMBOL_NAME = re.compile(r"[a-z]+\d+")  # torch's shape symbols: s0, u3, ...


def load_exported(archive: Archive) -> torch.export.ExportedProgram:
    source = archive.source
    _refuse_code(archive)
    if archive.read(layout.ARCHIVE_VERSION_PATH).decode(errors="replace") != layout.ARCHIVE_VERSION_VALUE:
        raise UserError(f"{source} was saved by a torch.export of another archive version: export it again with "
                        f"torch {torch.__version__}")
    try:
        program_json = _read_json(archive, layout.MODELS_FILENAME_FORMAT.format(MODEL))
        _check_program(program_json, source)
        program = _dict_to_dataclass(schema.ExportedProgram, program_json)
        weights = _meta_tensors(archive, layout.WEIGHTS_CONFIG_FILENAME_FORMAT.format(MODEL), layout.WEIGHTS_DIR)
        constants = _meta_tensors(archive, layout.CONSTANTS_CONFIG_FILENAME_FORMAT.format(MODEL),
                                  layout.CONSTANTS_DIR)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, AssertionError) as error:
        # torch's schema conversion trusts the JSON's shape: a field of the wrong type surfaces as any of these
        raise UserError(f"{source} is damaged: its program or payload description is malformed "
                        f"({type(error).__name__}: {_first_line(error)})") from None
    inputs = _sample_inputs(archive)
    try:
        return ExportedProgramDeserializer().deserialize(program, weights, constants, inputs)
    except Exception as error:
        raise UserError(f"{source}: torch cannot rebuild the exported program: {_first_line(error)}") from None


def _refuse_code(archive: Archive) -> None:
    """Parts of an archive torch would load as native code or as an older, pickled layout."""
    if archive.names_under(layout.AOTINDUCTOR_DIR):
        raise UserError(f"{archive.source} holds AOTInductor compiled code (a shared library that would run when "
                        f"loaded): pisim reads only the exported program; save it without AOTInductor artifacts")
    legacy = [f"{layout.WEIGHTS_DIR}{MODEL}.pt", f"{layout.CONSTANTS_DIR}{MODEL}.pt"]
    if any(archive.has(name) for name in legacy):
        raise UserError(f"{archive.source} stores weights in the old pickled layout: export it again with "
                        f"torch {torch.__version__}")


def _read_json(archive: Archive, name: str) -> Any:
    if not archive.has(name):
        raise UserError(f"{archive.source} is not a complete torch.export archive: {name} is missing")
    try:
        return json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{archive.source}: {name} is not valid JSON ({error})") from None


def _check_program(node: Any, source: str) -> None:
    """Walk the program JSON: every call target is a torch operator, every shape expression plain arithmetic."""
    if isinstance(node, dict):
        if isinstance(node.get("target"), str) and "inputs" in node and "outputs" in node:
            _check_target(node["target"], source)
        if isinstance(node.get("expr_str"), str):
            _check_sym_expr(node["expr_str"], source)
        for value in node.values():
            _check_program(value, source)
    elif isinstance(node, list):
        for value in node:
            _check_program(value, source)


def _check_target(target: str, source: str) -> None:
    """The deserializer resolves a target by walking attributes from `torch`, `_operator` or `math`, so a
    target such as torch.os.system would resolve, and run when the program does; only operators may."""
    head, _, rest = target.partition(".")
    resolved: Any = None
    if head == "torch" and rest.startswith("ops.") and not any(p.startswith("__") for p in rest.split(".")):
        resolved = torch
        try:
            for part in rest.split("."):
                resolved = getattr(resolved, part)
        except (AttributeError, RuntimeError):
            resolved = None
        if isinstance(resolved, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)):
            return
    elif head in ("_operator", "math") and re.fullmatch(r"[a-z]\w*", rest):
        resolved = getattr(operator if head == "_operator" else math, rest, None)
    elif head == "torch" and re.fullmatch(r"sym_\w+|_sym_\w+", rest):
        resolved = getattr(torch, rest, None)
    if resolved is None or not any(resolved is op for op in _SYM_OPS):
        raise UserError(f"{source}: the exported program calls {target[:100]!r}, which is not a torch operator; "
                        f"refusing a program that could run arbitrary functions")


def _check_sym_expr(expr: str, source: str) -> None:
    """torch parses shape expressions with sympy.sympify, an `eval`: allow numbers, shape symbols, sympy's
    arithmetic functions and operators, and nothing that could reach an attribute or a builtin."""
    position = 0
    while position < len(expr) and len(expr) <= MAX_SYM_EXPR_CHARS:
        match = _SYM_TOKEN.match(expr, position)
        if match is None or (match.group(2) and not (match.group(2) in _SYM_NAMES
                                                      or _SYMBOL_NAME.fullmatch(match.group(2)))):
            break
        position = match.end()
    if position < len(expr.rstrip()) or len(expr) > MAX_SYM_EXPR_CHARS:
        raise UserError(f"{source}: the exported program has a shape expression that is not arithmetic "
                        f"({expr[:60]!r}); torch would evaluate it as Python")


def _meta_tensors(archive: Archive, config_name: str, folder: str) -> dict[str, torch.Tensor]:
    """Weights or constants as meta tensors of their declared shapes, once each record is shown to hold them
    (shapes are all capture needs; a record that promises more than it holds is a damaged or hostile file)."""
    config = _read_json(archive, config_name)
    try:
        payloads = _dict_to_dataclass(schema.PayloadConfig, config).config
    except Exception as error:
        raise UserError(f"{archive.source}: {config_name} is not a payload config ({_first_line(error)})") from None
    tensors: dict[str, torch.Tensor] = {}
    for fqn, payload in payloads.items():
        what = f"{archive.source}: {fqn}"
        if not payload.path_name.startswith((layout.WEIGHT_FILENAME_PREFIX, layout.TENSOR_CONSTANT_FILENAME_PREFIX)):
            raise UserError(f"{what} is a custom object (it loads by unpickling, which can run arbitrary code); "
                            f"pisim reads only tensors from a torch.export archive")
        if payload.use_pickle:
            raise UserError(f"{what} is stored as a pickle, which can run arbitrary code when loaded; pisim "
                            f"reads only plain tensors from a torch.export archive")
        record = folder + payload.path_name
        if not archive.has(record) or payload.tensor_meta is None:
            raise UserError(f"{archive.source} is damaged: {fqn} has no tensor record {record}")
        tensor = _meta_tensor(payload.tensor_meta, archive.sizes[record], what)
        tensors[fqn] = torch.nn.Parameter(tensor, requires_grad=False) if payload.is_param else tensor
    return tensors


def _meta_tensor(meta: schema.TensorMeta, record_bytes: int, what: str) -> torch.Tensor:
    sizes, strides = [_as_int(s, what) for s in meta.sizes], [_as_int(s, what) for s in meta.strides]
    offset = _as_int(meta.storage_offset, what)
    dtype = _SERIALIZE_TO_TORCH_DTYPE.get(meta.dtype)
    if dtype is None or len(sizes) != len(strides) or min([*sizes, *strides, offset, 0]) < 0:
        raise UserError(f"{what}: malformed tensor metadata")
    extent = 0 if 0 in sizes else offset + 1 + sum((n - 1) * s for n, s in zip(sizes, strides))
    needed = extent * torch.empty(0, dtype=dtype).element_size()
    if needed > record_bytes:
        raise UserError(f"{what} declares {needed:,} bytes but its record holds {record_bytes:,}")
    return torch.empty_strided(sizes, strides, dtype=dtype, device="meta")


def _as_int(value: Any, what: str) -> int:
    if getattr(value, "type", None) != "as_int":
        raise UserError(f"{what} has a symbolic size; pisim reads archives exported with static shapes")
    return int(value.value)


def _sample_inputs(archive: Archive) -> tuple:
    name = layout.SAMPLE_INPUTS_FILENAME_FORMAT.format(MODEL)
    if not archive.has(name):
        raise UserError(f"{archive.source} is not a complete torch.export archive: {name} is missing")
    data = archive.read(name)
    nested = open_nested(data, f"{archive.source}: {name}")
    check_records(nested)
    try:
        inputs = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"{archive.source}: its sample inputs are not plain tensors ({_first_line(error)}); "
                        f"torch.export.load would unpickle them fully, which can run arbitrary code") from None
    if not isinstance(inputs, tuple):
        raise UserError(f"{archive.source}: its sample inputs are a {type(inputs).__name__}, not a tuple")
    return inputs


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
