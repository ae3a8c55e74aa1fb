"""Inspect a model file before torch sees it: zip archives are bounded and well formed, pickles only scanned.

Nothing here unpickles or runs anything from the file: zip entries are listed from the central directory,
and pickles are walked opcode by opcode (`pickletools.genops`) to find which tensor records they reference.
torch's own readers trust their input: an empty record a TorchScript pickle references crashes the process,
and a deflate bomb inflates into memory. These checks refuse such files with one line first.
"""
from __future__ import annotations

import io
import pickletools
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from pisim.errors import UserError

GIB = 1 << 30
MIB = 1 << 20
# The zip format's own entry count before ZIP64; a torch archive holds one record per tensor storage plus
# a few dozen metadata entries, so even a large network stays far below it.
MAX_ENTRIES = 65_535
# 1.6x the fp32 weights of torchvision's largest classifier (vit_h_14: 632 M parameters, 2.5 GB).
MAX_TOTAL_BYTES = 4 * GIB
# torch.save and torch.export.save store tensor records uncompressed (ratio 1) and TorchScript deflates
# only its code and JSON (about 10x); deflating repeated bytes reaches about 1000x, which only a bomb needs.
MAX_RATIO = 100
# Below this size an entry may compress as well as it likes: inflating it cannot cost memory that matters.
RATIO_EXEMPT_BYTES = 1 * MIB

LIMITS_TEXT = (f"archives are inspected before loading: at most {MAX_ENTRIES:,} entries, "
               f"{MAX_TOTAL_BYTES // GIB} GiB uncompressed and a {MAX_RATIO}x compression ratio per entry")


@dataclass(frozen=True)
class Archive:
    """A zip archive torch wrote: every entry sits under one root folder (`prefix`)."""

    source: str
    zip: zipfile.ZipFile
    prefix: str
    sizes: dict[str, int]  # entry name without the prefix -> uncompressed bytes

    def has(self, name: str) -> bool:
        return name in self.sizes

    def read(self, name: str) -> bytes:
        try:
            return self.zip.read(self.prefix + name)
        except KeyError:
            raise not_torch(self.source, f"no entry {name!r}") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error) as error:
            # zipfile reports a damaged entry (CRC, header, an impossible offset or method) only once it is read
            raise not_torch(self.source, f"a damaged zip entry {name!r}: {error}") from None

    def names_under(self, folder: str) -> list[str]:
        return [n for n in self.sizes if n.startswith(folder)]


def not_torch(source: str, why: str) -> UserError:
    return UserError(f"{source} is not a model file (not a torch archive: {why}); pass a state dict, TorchScript "
                     f"or torch.export archive")


def is_zip(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06")


def open_archive(handle: BinaryIO, source: str) -> Archive:
    """List and check a zip archive; raises UserError for anything torch should not be handed."""
    try:
        archive = zipfile.ZipFile(handle)
        infos = archive.infolist()
    except UnicodeDecodeError:
        raise UserError(f"{source}: a zip entry name is not valid UTF-8; torch never writes such names") from None
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as error:
        raise not_torch(source, f"a damaged or truncated zip: {error}") from None
    if len(infos) > MAX_ENTRIES:
        raise UserError(f"{source} is too large: {len(infos):,} zip entries (at most {MAX_ENTRIES:,})")
    total = 0
    sizes: dict[str, int] = {}
    for info in infos:
        _check_name(info, source)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise UserError(f"{source} is too large: its entries inflate to more than {MAX_TOTAL_BYTES // GIB} GiB")
        if info.file_size > RATIO_EXEMPT_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UserError(f"{source} is too large: entry {info.filename} inflates "
                            f"{info.file_size / max(info.compress_size, 1):,.0f}x (at most {MAX_RATIO}x), "
                            f"like a zip bomb")
        sizes[info.filename] = info.file_size
    roots = {name.split("/", 1)[0] for name in sizes}
    if len(roots) != 1 or any("/" not in name for name in sizes):
        raise not_torch(source, "a zip whose entries are not all under one folder, as torch writes them")
    prefix = roots.pop() + "/"
    return Archive(source, archive, prefix, {n[len(prefix):]: s for n, s in sizes.items()})


def _check_name(info: zipfile.ZipInfo, source: str) -> None:
    name = info.filename
    if not info.flag_bits & 0x800:  # without the UTF-8 flag zipfile decoded the raw bytes as cp437
        try:
            name.encode("cp437").decode("utf-8")
        except UnicodeError:
            raise UserError(f"{source}: a zip entry name is not valid UTF-8; torch never writes such names") from None
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", name) or "\x00" in name:
        raise UserError(f"{source}: zip entry {name!r} points outside the archive (absolute or '..')")


def open_nested(data: bytes, source: str) -> Archive:
    """A torch.save file stored inside another archive (torch.export's sample inputs), under the same checks."""
    return open_archive(io.BytesIO(data), source)


# -- pickles, scanned without unpickling ---------------------------------------------------------------

class _Opaque:
    """A stack value the scan does not model (an object some opcode would build)."""


_OPAQUE = _Opaque()
LOADED_PICKLES = ("data.pkl", "constants.pkl")  # what torch.load and torch.jit.load unpickle from an archive
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


@dataclass(frozen=True)
class StorageRef:
    """A persistent id ('storage', type, key, location, numel) that a torch pickle loads a record for."""

    storage_type: str
    key: str
    numel: int


@dataclass
class PickleScan:
    refs: list[StorageRef]  # tensor records the pickle loads
    globals: list[str]  # module.name of every class or function it would import


def scan_pickle(data: bytes, source: str) -> PickleScan:
    """What a torch pickle references (tensor records, Python globals), found by walking its opcodes."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}
    scan = PickleScan([], [])
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "MARK":
                marks.append(len(stack))
            elif name in _MEMO_PUT:
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in _MEMO_GET:
                stack.append(memo[arg])
            elif name in ("GLOBAL", "INST"):
                scan.globals.append(arg.replace(" ", "."))
                stack.append(("global", scan.globals[-1]))
            elif name == "STACK_GLOBAL":
                module, qualname = stack.pop(-2), stack.pop()
                scan.globals.append(f"{module}.{qualname}")
                stack.append(("global", scan.globals[-1]))
            elif name == "TUPLE":
                start = marks.pop()
                stack[start:] = [tuple(stack[start:])]
            elif name in _TUPLE_N:
                count = _TUPLE_N[name]
                stack[-count:] = [tuple(stack[-count:])]
            elif name == "BINPERSID":
                scan.refs.append(_storage_ref(stack.pop(), source))
                stack.append(_OPAQUE)
            elif name == "PERSID":
                raise UserError(f"{source}: a text persistent id, which torch never writes")
            elif name == "STOP":
                break
            elif op.arg is not None and not op.stack_before:  # a literal: string, number, bytes
                stack.append(arg)
            else:
                _generic(op, stack, marks)
    except (ValueError, IndexError, KeyError) as error:
        raise not_torch(source, f"a malformed pickle: {error}") from None
    return scan


def _generic(op: pickletools.OpcodeInfo, stack: list[Any], marks: list[int]) -> None:
    """Apply an opcode's stack effect with opaque results (pickletools documents each opcode's effect)."""
    before = op.stack_before
    if pickletools.markobject in before:
        below = before.index(pickletools.markobject)
        del stack[marks.pop():]
        if below:
            if len(stack) < below:
                raise IndexError("stack underflow")
            del stack[-below:]
    elif before:
        if len(stack) < len(before):
            raise IndexError("stack underflow")
        del stack[-len(before):]
    stack.extend(_OPAQUE for _ in op.stack_after if _ is not pickletools.markobject)
    if pickletools.markobject in op.stack_after:
        marks.append(len(stack))


def _storage_ref(pid: Any, source: str) -> StorageRef:
    if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], tuple)
            and pid[1][0] == "global" and isinstance(pid[2], str) and isinstance(pid[4], int)):
        return StorageRef(pid[1][1], pid[2], pid[4])
    raise UserError(f"{source}: a pickle references something other than a tensor storage")


def _element_size(storage_type: str, source: str) -> int:
    import torch  # here, not at the top: `--help` reads this module's limits and must not import torch
    from torch.storage import _get_dtype_from_pickle_storage_type  # the table torch.load itself reads

    name = storage_type.removeprefix("torch.")
    if name == "UntypedStorage":
        return 1
    try:
        return torch.empty(0, dtype=_get_dtype_from_pickle_storage_type(name)).element_size()
    except KeyError:
        raise UserError(f"{source}: a pickle references an unknown storage type {storage_type}") from None


def check_records(archive: Archive) -> None:
    """Every tensor record the pickles torch loads reference exists and holds exactly the bytes it promises.

    torch reads a record named by a pickle's persistent id (data.pkl -> data/KEY, constants.pkl -> constants/KEY)
    without checking its size; a TorchScript archive whose pickle promises 108 floats in an empty record
    crashes torch.jit.load with a segmentation fault. (torch.jit.trace also writes traced_inputs.pkl, with
    empty records; torch never loads it.)
    """
    for name in [n for n in LOADED_PICKLES if archive.has(n)]:
        folder = name[:-len(".pkl")]
        for ref in scan_pickle(archive.read(name), f"{archive.source}: {name}").refs:
            record = f"{folder}/{ref.key}"
            want = ref.numel * _element_size(ref.storage_type, archive.source)
            if not archive.has(record):
                raise UserError(f"{archive.source} is damaged: {name} references missing record {record}")
            if archive.sizes[record] != want:
                raise UserError(f"{archive.source} is damaged: record {record} holds {archive.sizes[record]} bytes, "
                                f"{name} expects {want}")
