"""Models in: zoo and torchvision names, TorchScript and torch.export archives, state dicts.

Safe by default: state dicts load with `torch.load(weights_only=True)`; a fully pickled module
(which can run arbitrary code when unpickled) loads only with `trust_pickle=True`.
"""
from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from pisim.errors import UserError
from pisim.zoo import ZOO, build_zoo_model, zoo_names

IMAGENET_INPUT = (3, 224, 224)
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "snet", "net")


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
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_named(name: str, num_classes: int | None = None) -> LoadedModel:
    """A zoo or torchvision classifier by name, randomly initialised (weights are never downloaded)."""
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
    path = Path(spec)
    if path.is_file():
        return _load_file(path, arch, num_classes, trust_pickle)
    if path.exists():
        raise UserError(f"{spec} is not a file: pass a model file or a model name")
    if arch is not None or path.suffix in (".pt", ".pth", ".pt2", ".tar", ".ts", ".bin") or "/" in spec:
        raise UserError(f"no such file: {spec}")
    return build_named(spec, num_classes)


def _zip_names(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _load_file(path: Path, arch: str | None, num_classes: int | None, trust_pickle: bool) -> LoadedModel:
    names = _zip_names(path)
    if any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names):
        return _load_torchscript(path)
    if any(n.endswith("serialized_exported_program.json") or n.endswith("archive_format") for n in names):
        return _load_exported(path)
    obj = _torch_load(path, trust_pickle)
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


def _load_exported(path: Path) -> LoadedModel:
    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise UserError(f"{path} looks like a torch.export archive but cannot be read: {_line(error)}") from None
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    default = tuple(inputs[0].meta["val"].shape[1:]) if inputs else None
    return LoadedModel(program, f"{path.name} (torch.export)", default)


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the restricted unpickler; its verdict is what counts
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower() and "weights_only" not in str(error).lower():
            raise UserError(f"{path} is not a model file (truncated or unrecognised): {_line(error)}") from None
        if not trust_pickle:
            raise UserError(f"{path} is a full pickle, which can run arbitrary code when loaded: re-run with "
                            f"--trust-pickle only if you trust its source, or save a state dict, TorchScript "
                            f"or torch.export archive instead") from None
    except Exception as error:
        raise UserError(f"{path} is not a model file (truncated or unrecognised): {_line(error)}") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as error:
        raise UserError(f"{path} could not be unpickled: {_line(error)}") from None


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
    built = build_named(arch, num_classes or _classes_from_state(state))
    try:
        built.model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise UserError(f"{path} does not fit --arch {arch}: {detail}") from None
    return LoadedModel(built.model.eval(), f"{path.name} ({arch})", built.default_input)


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
