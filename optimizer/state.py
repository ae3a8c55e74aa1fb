"""A search's state on disk that cannot be lost: one search at a time per --out, a resume that checks every file
it will read before it writes any, and no temporary files left behind by writes that a kill cut short.

The files checked and their formats are those the search writes: frontier.json (read through its records,
optimizer.records, as every reader reads it) and criticality.json (optimizer.criticality, docs/architecture.md),
and in the job cache each training job's job.json, checkpoint.pt, result.json and model.pt (optimizer.training),
an early-stopped job's marker (optimizer.executors.early_stopping) and a gate search's files (optimizer.gate_search).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from optimizer import gate_search
from optimizer.candidate import Candidate
from optimizer.executors.early_stopping import STOPPED
from optimizer.models import ModelSource
from optimizer.records import FRONTIER_FILE, FrontierDocument
from optimizer.training import CHECKPOINT, JOB_SPEC, RESULT, WEIGHTS
from optimizer.transforms import variants_of
from pisim.errors import UserError
from pisim.io import TEMPORARY_SUFFIX

LOCK_FILE = ".search.lock"
CRITICALITY_FILE = "criticality.json"
# How often to retry taking the lock when its file was replaced between open and flock (another search released
# it meanwhile): each retry means another process won a race, so a handful settles any real contention.
LOCK_ATTEMPTS = 5
LONGEST_QUOTE = 40  # characters of a wrong value quoted in an error message, which must stay one line


# ---- the lock --------------------------------------------------------------------------------------------------

@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the search directory `out`, or refuse naming the process that holds it.

    flock is released by the kernel when its holder dies, so a lock file left by a killed search blocks nothing.
    The lock file, and the directories made to hold it, are removed on release: a search that fails before it
    starts leaves `out` as it found it.
    """
    out = Path(out)
    made = [directory for directory in (out, *out.parents) if not directory.exists()]
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    try:
        handle = _acquire(path, out)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked: a waiting search then sees a replaced file
            handle.close()
    finally:
        for directory in made:  # innermost first; a directory with anything in it stays
            try:
                directory.rmdir()
            except OSError:
                break


def _acquire(path: Path, out: Path):
    for _ in range(LOCK_ATTEMPTS):
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read()
            handle.close()
            raise UserError(f"{out} is in use by another search ({_describe_holder(holder)}); wait for it to "
                            "finish or choose another --out") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
            handle.flush()
            return handle
        handle.close()  # its holder removed the file after we opened it: lock the new one
    raise UserError(f"{out}: could not take the lock {path} ({LOCK_ATTEMPTS} searches raced for it); try again")


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"PID {int(holder['pid'])} on {holder['host']}, started {holder['started']}"
    except (ValueError, TypeError, KeyError):
        return "it has not yet written which process it is"


# ---- stale temporary files -------------------------------------------------------------------------------------

def sweep_temporaries(out: Path) -> list[Path]:
    """Remove the temporary files (pisim.io.atomic_writer's `.NAME.*.tmp`) that killed writes left under `out`.

    Call it holding `exclusive(out)`: no other search writes there then. A --cache-dir outside `out` may be
    shared by searches this lock does not cover, so it is not swept (the walk does not follow symlinks).
    """
    stale = [p for p in Path(out).rglob(f".*{TEMPORARY_SUFFIX}") if p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


# ---- formats -----------------------------------------------------------------------------------------------------
# A format is a Python type (or tuple of types), a dict of required fields (extra fields are allowed: readers
# ignore them), or one of the shapes below.

NUMBER = (int, float)


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """An object with any keys, every value of one format (a state dict: name -> tensor)."""
    value: Any


@dataclass(frozen=True)
class Maybe:
    value: Any  # or None


CURVE = ListOf({"epoch": int, "train_loss": Maybe(NUMBER), "test_accuracy": NUMBER})  # null: a diverged epoch
CRITICALITY = {"floor_accuracy": NUMBER,  # optimizer.criticality.Criticality.to_dict
               "scores": ListOf({"stage": str, "feature_map": ListOf(int), "relus": int, "latency_s": NUMBER,
                                 "accuracy": NUMBER, "gain": NUMBER})}
STATE_DICT = MapOf(torch.Tensor)
JOB = {"model": dict, "data": dict, "candidate": dict, "schedule": {"epochs": int}, "seed": int}  # TrainJob.spec
TRAIN_RESULT = {"accuracy": NUMBER, "curve": CURVE, "device": str, "job": dict}  # training.train
TRAIN_CHECKPOINT = {"epoch": int, "model": STATE_DICT, "optimizer": {"state": dict, "param_groups": ListOf(dict)},
                    "scheduler": dict, "scaler": dict, "curve": CURVE}  # training.train, after each epoch
STOPPED_MARKER = {"curve": CURVE}  # early_stopping.write_stopped
GATE_RESULT = {"candidate": dict, "size": NUMBER, "ended_by": str, "epochs": NUMBER,  # gate_search.search_gates
               "history": ListOf(dict)}
GATE_CHECKPOINT = {**TRAIN_CHECKPOINT, "scheduler": type(None),  # training.fit with gate_search's budget hooks
                   "hooks": {"penalty": NUMBER, "history": ListOf(dict), "lowest": NUMBER, "stalled": int}}


def _quote(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= LONGEST_QUOTE else text[:LONGEST_QUOTE] + "..."


def _kind(form: Any) -> str:
    kinds = form if isinstance(form, tuple) else (form,)
    return " or ".join("a number" if k in NUMBER else "an object" if k is dict else
                       "a list" if k is list else "a tensor" if k is torch.Tensor else k.__name__ for k in kinds)


def mismatch(value: Any, form: Any, where: str) -> str | None:
    """What is wrong with `value` as `form`, naming the field at `where`; None when it fits."""
    field = f"field {where!r}" if where else "the content"
    if isinstance(form, dict):
        if not isinstance(value, dict):
            return f"{field} must be an object, got {_quote(value)}"
        for key, inner in form.items():
            if key not in value:
                return f"missing field {(where + '.' if where else '') + key!r}"
            problem = mismatch(value[key], inner, f"{where}.{key}" if where else key)
            if problem:
                return problem
        return None
    if isinstance(form, ListOf):
        if not isinstance(value, list):
            return f"{field} must be a list, got {_quote(value)}"
        return next((p for i, item in enumerate(value) if (p := mismatch(item, form.item, f"{where}[{i}]"))), None)
    if isinstance(form, MapOf):
        if not isinstance(value, dict):
            return f"{field} must be an object, got {_quote(value)}"
        return next((p for key, item in value.items()
                     if (p := mismatch(item, form.value, f"{where}.{key}" if where else str(key)))), None)
    if isinstance(form, Maybe):
        return None if value is None else mismatch(value, form.value, where)
    kinds = form if isinstance(form, tuple) else (form,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        return f"{field} must be {_kind(form)}, got {_quote(value)}"
    return None


# ---- reading and checking -------------------------------------------------------------------------------------

# What to do about a corrupt file, by where it sits: every job in the cache can be trained again.
JOB_HINT = "delete its job directory to train that job again"
FRONTIER_HINT = "restore it, or delete it and run without --resume (finished jobs are reused from the cache)"
CRITICALITY_HINT = "delete it: the search measures criticality again from its cached jobs"


class CorruptState(Exception):
    """One problem with one file (the caller adds which file and what to do)."""


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorruptState(f"cannot be read ({error.strerror})") from None
    if not data.strip():
        raise CorruptState("is empty (a write cut short?)")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptState("is not a text file; expected JSON") from None
    except json.JSONDecodeError as error:
        raise CorruptState(f"is not valid JSON ({error.msg} at line {error.lineno}; truncated?)") from None


def _read_torch(path: Path) -> Any:
    if not zipfile.is_zipfile(path):  # what torch.save writes; anything else is not one of the search's files
        raise CorruptState("is not a torch file (torch.save writes a zip archive)")
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to load is a corrupt file; torch raises many kinds
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        refused = next((line for line in lines if "Unsupported global" in line), None)  # weights_only said no
        reason = f"holds objects other than tensors: {refused}" if refused else lines[0]
        raise CorruptState(f"cannot be loaded as tensors ({reason[:100]})") from None


def _checked(path: Path, read: Callable[[Path], Any], form: Any) -> Any:
    content = read(path)
    problem = mismatch(content, form, "")
    if problem:
        raise CorruptState(problem)
    return content


def _fail(path: Path, problem: str, hint: str) -> UserError:
    return UserError(f"{path}: {problem}; {hint}")


def check_frontier(out: Path) -> FrontierDocument:
    """OUT/frontier.json read through its records, with the options it was run with; a UserError names the file
    and the field otherwise."""
    path = Path(out) / FRONTIER_FILE
    try:
        document = FrontierDocument.read(path)
    except UserError as problem:
        raise UserError(f"{problem}; {FRONTIER_HINT}") from None
    if document.search is None:  # what --resume compares the command's options with
        raise _fail(path, "missing field 'search'", FRONTIER_HINT)
    return document


def check_criticality(out: Path) -> None:
    path = Path(out) / CRITICALITY_FILE
    if path.exists():
        try:
            _checked(path, _read_json, CRITICALITY)
        except CorruptState as problem:
            raise _fail(path, str(problem), CRITICALITY_HINT) from None


def check_cache(cache_dir: Path, source: ModelSource) -> None:
    """Every job directory in `cache_dir`: its files in their formats, and the weights of this search's jobs
    (those of `source`) of the network the job trains. A UserError names the first bad file."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return
    expected = _ExpectedShapes(source)
    for directory in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        check = _check_gate_job if directory.name.startswith(gate_search.DIRECTORY_PREFIX) else _check_train_job
        check(directory, expected)


def _check_file(path: Path, read: Callable[[Path], Any], form: Any) -> Any:
    try:
        return _checked(path, read, form)
    except CorruptState as problem:
        raise _fail(path, str(problem), JOB_HINT) from None


def _check_train_job(directory: Path, expected: "_ExpectedShapes") -> None:
    result, checkpoint = directory / RESULT, directory / CHECKPOINT
    if not (result.exists() or checkpoint.exists() or (directory / STOPPED).exists()):
        return  # not a job directory, or a job that never finished setting up: nothing is read from it
    spec = _check_file(directory / JOB_SPEC, _read_json, JOB) if (directory / JOB_SPEC).exists() else None
    if result.exists():
        _check_file(result, _read_json, TRAIN_RESULT)
        weights = directory / WEIGHTS
        if not weights.exists():
            raise _fail(weights, f"is missing, though {RESULT} says the job finished", JOB_HINT)
        expected.check(weights, _check_file(weights, _read_torch, STATE_DICT), spec)
    elif checkpoint.exists():
        state = _check_file(checkpoint, _read_torch, TRAIN_CHECKPOINT)
        if state["epoch"] != len(state["curve"]) or state["epoch"] < 1:
            raise _fail(checkpoint, f"says epoch {state['epoch']} but holds {len(state['curve'])} epochs of curve",
                        JOB_HINT)
        expected.check(checkpoint, state["model"], spec, state["optimizer"])
    if (directory / STOPPED).exists():
        _check_file(directory / STOPPED, _read_json, STOPPED_MARKER)


def _check_gate_job(directory: Path, expected: "_ExpectedShapes") -> None:
    result = directory / gate_search.RESULT
    if result.exists():
        _check_file(result, _read_json, GATE_RESULT)
        warm_start = directory / gate_search.WARM_START
        if not warm_start.exists():
            raise _fail(warm_start, f"is missing, though {gate_search.RESULT} says the gate search finished",
                        JOB_HINT)
        _check_file(warm_start, _read_torch, STATE_DICT)
    elif (directory / gate_search.CHECKPOINT).exists():
        _check_file(directory / gate_search.CHECKPOINT, _read_torch, GATE_CHECKPOINT)


@dataclass(frozen=True)
class _Network:
    shapes: dict[str, tuple[int, ...]]  # state dict entry -> shape
    parameters: list[tuple[int, ...]]  # shapes in model.parameters() order: how the optimizer's state indexes them


class _ExpectedShapes:
    """The network each job of this search trains, built once per candidate, to check weights against."""

    def __init__(self, source: ModelSource):
        self.source = source
        self._built: dict[Any, _Network] = {}  # by shape, or by candidate where it has element masks

    def check(self, path: Path, state: dict[str, torch.Tensor], spec: dict[str, Any] | None,
              optimizer: dict[str, Any] | None = None) -> None:
        if spec is None:
            raise _fail(path.parent / JOB_SPEC, f"is missing: nothing says which network {path.name} belongs to",
                        JOB_HINT)
        if spec["model"] != self.source.to_dict():
            return  # another search's job in a shared cache: checked for its format only
        network = self._network(path.parent / JOB_SPEC, spec["candidate"])
        problem = _state_mismatch(state, network.shapes)
        if problem:
            raise _fail(path, f"does not fit the network its job trains: {problem}", JOB_HINT)
        if optimizer is not None:
            _check_optimizer(path, optimizer, network.parameters)

    def _network(self, spec_path: Path, described: dict[str, Any]) -> _Network:
        try:
            candidate = Candidate.from_dict(described)
            # Culling and thinning remove parameter-free ReLUs, so the network's weights are those of its shape;
            # only element masks add modules (MaskedReLU), and only they need the candidate built (a capture).
            key = candidate if candidate.relu_masks else candidate.shape_key
            if key not in self._built:
                model = (variants_of(self.source).build(candidate, initialise=False) if candidate.relu_masks else
                         self.source.build(candidate.alpha, candidate.rho, candidate.num_blocks))
                self._built[key] = _Network({name: tuple(t.shape) for name, t in model.state_dict().items()},
                                            [tuple(p.shape) for p in model.parameters()])
        except (UserError, TypeError, ValueError) as error:
            raise _fail(spec_path, f"names a candidate this model cannot build ({error})", JOB_HINT) from None
        return self._built[key]


def _state_mismatch(state: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> str | None:
    missing = [name for name in shapes if name not in state]
    if missing:
        return f"{missing[0]!r} is missing"
    unexpected = [name for name in state if name not in shapes]
    if unexpected:
        return f"it has no {unexpected[0]!r}"
    wrong = next((name for name in shapes if tuple(state[name].shape) != shapes[name]), None)
    if wrong:
        return f"{wrong!r} is {tuple(state[wrong].shape)}, not {shapes[wrong]}"
    return None


def _check_optimizer(path: Path, optimizer: dict[str, Any], parameters: list[tuple[int, ...]]) -> None:
    indices = [i for group in optimizer["param_groups"] for i in group.get("params", [])]
    if sorted(indices) != list(range(len(parameters))):
        raise _fail(path, f"its optimizer state covers {len(indices)} parameters, the network has "
                          f"{len(parameters)}", JOB_HINT)
    for index, slots in optimizer["state"].items():
        buffer = slots.get("momentum_buffer") if isinstance(slots, dict) else None
        if index not in range(len(parameters)) or (
                isinstance(buffer, torch.Tensor) and tuple(buffer.shape) != parameters[index]):
            raise _fail(path, f"its optimizer state for parameter {index!r} does not fit the network", JOB_HINT)
