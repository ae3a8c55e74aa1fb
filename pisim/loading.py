"""Models in: zoo and torchvision names, TorchScript and torch.export archives, state dicts.

Safe by default: nothing from a file is unpickled beyond plain tensors (`torch.load(weights_only=True)`,
torch.export archives assembled by pisim.pt2); a fully pickled module (which can run arbitrary code when
unpickled) loads only with `trust_pickle=True`. Archives are inspected (pisim.archive) before torch reads them.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import torch
import torch.nn as nn

from pisim.archive import MAX_TOTAL_BYTES, check_records, is_zip, not_torch, open_archive, scan_pickle
from pisim.errors import UserError
from pisim.pt2 import load_exported
from pisim.zoo import ZOO, build_zoo_model, zoo_names
from pisim.zoo.torchvision_names import IMAGENET_INPUT, classifier_names

_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "snet", "net")
MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".tar", ".ts", ".bin")
META = torch.device("meta")
_STAT_ERRORS = {  # errno -> what the user is told; the name limits are Linux's NAME_MAX and PATH_MAX
    errno.ELOOP: "symlink loop (a link that points back to itself)",
    errno.ENAMETOOLONG: "file name too long (the limit is 255 bytes per name, 4096 per path)",
    errno.EACCES: "permission denied (a folder on the path is not searchable by this user)",
    errno.ENOTDIR: "no such file (a part of the path is not a folder)",
}
PICKLE_PROTO = b"\x80"  # the first opcode of every pickle of protocol 2 or later, which torch.save writes
MAX_TREE_DEPTH = 32  # a checkpoint nests its state dict two or three mappings deep


@dataclass
class LoadedModel:
    model: nn.Module | torch.export.ExportedProgram | torch.jit.ScriptModule
    description: str
    default_input: tuple[int, ...] | None  # None: the caller must say (--input-size)


def parse_input_size(text: str) -> tuple[int, ...]:
    """'3x32x32' -> (3, 32, 32)."""
    if not re.fullmatch(r"\s*\d+(\s*[xX,]\s*\d+){0,3}\s*", text or ""):
        raise UserError(f"malformed --input-size {text!r}: write channels x height x width, e.g. 3x32x32")
    dims = tuple(int(d) for d in re.split(r"[xX,]", text.replace(" ", "")))
    if any(d <= 0 for d in dims):
        raise UserError(f"malformed --input-size {text!r}: every dimension must be positive")
    return dims


def torchvision_classifiers() -> list[str]:
    return list(classifier_names())


def build_named(name: str, num_classes: int | None = None, device: torch.device | None = None) -> LoadedModel:
    """A zoo or torchvision classifier by name, randomly initialised (weights are never downloaded);
    on the meta device its parameters are shapes only, so any head size costs nothing."""
    with device or torch.get_default_device():
        if name in ZOO:
            model = build_zoo_model(name, num_classes=num_classes or 10)
            return LoadedModel(model, name, ZOO[name].default_input)
        if name in torchvision_classifiers():
            import torchvision

            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000)
            return LoadedModel(model, f"torchvision {name}", IMAGENET_INPUT)
    raise UserError(f"unknown model name {name!r}: use a zoo name ({', '.join(zoo_names())}), "
                    f"a torchvision classifier name (e.g. resnet18; `pisim models` lists them) or a model file")


def load_model(spec: str, *, arch: str | None = None, num_classes: int | None = None,
               trust_pickle: bool = False) -> LoadedModel:
    """The model a command line names, for capture: parameters on the meta device wherever the file allows.

    Nothing from a file is unpickled beyond plain tensors unless `trust_pickle`; every archive is inspected
    (pisim.archive) before torch reads it; named models and state dicts are built on the meta device, so a huge
    classifier head or input costs no memory (capture needs shapes only).
    """
    path = Path(spec)
    if _stat(path, spec) is None:
        if arch is not None or path.suffix in MODEL_SUFFIXES or "/" in spec:
            raise UserError(f"no such file: {spec}")
        return build_named(spec, num_classes, device=META)
    if not path.is_file():
        raise UserError(f"{spec} is not a file: pass a model file or a model name")
    try:
        handle = path.open("rb")
    except PermissionError:
        raise UserError(f"{spec}: permission denied (the file is not readable by this user)") from None
    except OSError as error:
        raise UserError(f"{spec} cannot be read: {error.strerror or error}") from None
    with handle:
        return _load_file(path, handle, arch, num_classes, trust_pickle)


def load_weights(path: str | Path, map_location: Any = "cpu") -> Any:
    """Tensors a program saved for itself (state dicts, checkpoints), read with the checks `load_model` applies:
    the archive inspected first, then `torch.load(weights_only=True)`; never a full pickle."""
    path = Path(path)
    with path.open("rb") as handle:
        if is_zip(handle.read(4)):
            handle.seek(0)
            check_records(open_archive(handle, str(path)))
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as error:
        raise UserError(f"{path} is not a plain-tensor file: {_line(error)}") from None


def load_exported_file(path: str | Path) -> torch.export.ExportedProgram:
    """A torch.export archive read as `load_model` reads one (the optimizer re-reads its exports this way)."""
    loaded = load_model(str(path))
    if not isinstance(loaded.model, torch.export.ExportedProgram):
        raise UserError(f"{path} is not a torch.export archive")
    return loaded.model


def _stat(path: Path, spec: str) -> os.stat_result | None:
    """The file's status, None when nothing is there; every other failure is a one-line UserError."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(f"{spec}: broken symlink (it points to a missing file)") from None
        return None
    except OSError as error:
        reason = _STAT_ERRORS.get(error.errno, error.strerror or str(error))
        raise UserError(f"{spec}: {reason}") from None
    except ValueError:  # a NUL byte in the path
        raise UserError(f"{spec!r} is not a valid path") from None


def _load_file(path: Path, handle: BinaryIO, arch: str | None, num_classes: int | None,
               trust_pickle: bool) -> LoadedModel:
    head = handle.read(4)
    handle.seek(0)
    if is_zip(head):
        archive = open_archive(handle, str(path))
        if archive.has("constants.pkl") and archive.names_under("code/"):
            check_records(archive)
            return _load_torchscript(path)
        if archive.has("archive_format"):
            return LoadedModel(*_exported(load_exported(archive), path))
        if archive.has("serialized_exported_program.json"):
            raise UserError(f"{path} is a torch.export archive of the layout torch 2.7 and older wrote, which "
                            f"pickles its parts: export it again with torch {torch.__version__}")
        if not archive.has("data.pkl"):
            raise not_torch(str(path), "a zip without data.pkl or an exported program")
        check_records(archive)
        obj = _torch_load(path, archive.read("data.pkl"), trust_pickle, mmap=True)
    elif head[:1] == PICKLE_PROTO:  # torch.save's format before 1.6: a bare pickle stream
        if path.stat().st_size > MAX_TOTAL_BYTES:
            raise UserError(f"{path} is too large: more than {MAX_TOTAL_BYTES // (1 << 30)} GiB")
        obj = _torch_load(path, handle.read(), trust_pickle, mmap=False)
    else:
        size = path.stat().st_size
        raise not_torch(str(path), f"{size:,} byte{'s' if size != 1 else ''}, neither a zip nor a pickle")
    if isinstance(obj, nn.Module):
        return LoadedModel(obj.eval(), f"{path.name} (pickled {type(obj).__name__})", None)
    if isinstance(obj, Mapping):
        return _from_state_dict(path, obj, arch, num_classes)
    raise UserError(f"{path} holds a {type(obj).__name__}, not a model: pass a state dict, TorchScript or "
                    f"torch.export archive")


def _load_torchscript(path: Path) -> LoadedModel:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still a safe format to read
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise UserError(f"{path} looks like a TorchScript archive but cannot be read: {_line(error)}") from None
    return LoadedModel(model.eval(), f"{path.name} (TorchScript)", None)


def _exported(program: torch.export.ExportedProgram, path: Path) -> tuple:
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    default = tuple(inputs[0].meta["val"].shape[1:]) if inputs else None
    return program, f"{path.name} (torch.export)", default


def _torch_load(path: Path, pickled: bytes, trust_pickle: bool, mmap: bool) -> Any:
    """torch.load with weights_only=True (tensors memory-mapped where the format allows); a full pickle
    only with `trust_pickle`. `pickled` is the file's pickle, scanned to tell a full pickle from a damaged one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the restricted unpickler; its verdict is what counts
            return _checked_tree(torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap), path)
    except pickle.UnpicklingError as error:
        named = _foreign_global(pickled)
        if named is None:
            raise UserError(f"{path} is not a model file (a damaged pickle): {_line(error)}") from None
        if trust_pickle:
            return _unpickle_trusted(path)
        raise UserError(f"{path} is a full pickle (it names the Python global {named}), which can run "
                        f"arbitrary code when loaded: re-run with --trust-pickle only if you trust its source, "
                        f"or save a state dict, TorchScript or torch.export archive instead") from None
    except UserError:
        raise
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a state dict") from None
    except Exception as error:
        raise UserError(f"{path} is not a model file (damaged or unrecognised): {_line(error)}") from None


def _unpickle_trusted(path: Path) -> Any:
    """The one place a file is fully unpickled: called only when the user passed --trust-pickle."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as error:
        raise UserError(f"{path} could not be unpickled: {_line(error)}") from None


def _foreign_global(pickled: bytes) -> str | None:
    """The first Python global a pickle imports beyond torch's own and OrderedDict: what makes it a full pickle."""
    try:
        names = scan_pickle(pickled, "pickle").globals
    except UserError:
        return None
    return next((n for n in names if not n.startswith(("torch.", "collections.OrderedDict"))), None)


def _checked_tree(obj: Any, path: Path) -> Any:
    """A loaded state dict has string keys and no cycles (a pickle can build a dict that contains itself)."""
    def walk(node: Any, ancestors: tuple[int, ...]) -> None:
        if not isinstance(node, (Mapping, list, tuple)):
            return
        if id(node) in ancestors:
            raise UserError(f"{path} refers to itself (a container inside itself): not a state dict")
        if len(ancestors) > MAX_TREE_DEPTH:
            raise UserError(f"{path} nests more than {MAX_TREE_DEPTH} containers deep: not a state dict")
        children = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in children:
            if isinstance(node, Mapping) and not isinstance(key, str):
                raise UserError(f"{path} has a {type(key).__name__} key ({str(key)[:40]}); a state dict's keys "
                                f"are parameter names (strings)")
            walk(value, (*ancestors, id(node)))

    walk(obj, ())
    return obj


def _unwrap_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    for key in _STATE_DICT_WRAPPERS:
        if key in obj and isinstance(obj[key], Mapping):
            return _unwrap_state_dict(obj[key])
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _classes_from_state(state: Mapping[str, torch.Tensor]) -> int | None:
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def _from_state_dict(path: Path, obj: Mapping, arch: str | None, num_classes: int | None) -> LoadedModel:
    state = _unwrap_state_dict(obj)
    if not state:
        raise UserError(f"{path} holds no tensors: it is not a state dict")
    if arch is None:
        raise UserError(f"{path} is a state dict: pass --arch NAME (a zoo or torchvision name) to say which "
                        f"network it belongs to")
    built = build_named(arch, num_classes or _classes_from_state(state), device=META)
    shapes = {name: torch.empty_like(tensor, device=META) for name, tensor in state.items()}
    try:
        with warnings.catch_warnings():  # batch norm fills a missing counter with a CPU tensor and warns; the
            warnings.simplefilter("ignore", UserWarning)  # missing key is reported below all the same
            built.model.load_state_dict(shapes, strict=True)  # checks names and shapes; capture needs no values
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise UserError(f"{path} does not fit --arch {arch}: {detail}") from None
    return LoadedModel(built.model.eval(), f"{path.name} ({arch})", built.default_input)


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
