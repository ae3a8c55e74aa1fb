"""Hostile model files: refused with exit 2 and one line, before any of their code runs or memory is spent.

Every hostile file is built here from a real export or save. The three malicious torch.export archives are
first shown to be live (torch.export.load runs their payload); pisim must then refuse each without running it.
Checks that need their own process (a crash, peak memory) go through the CLI; the others call `pisim.cli.main`
in process, which is the same code path without the interpreter's start-up.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import run_cli
from pisim.cli import main
from pisim.errors import UserError
from pisim.loading import load_weights
from pisim.zoo import build_zoo_model

PEAK_RSS_BYTES = 1.5 * (1 << 30)  # the bound for a huge head or input: capture needs shapes only


class _Payload:
    """Unpickling this creates `marker`: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "ok.pt2"
    torch.export.save(torch.export.export(_tiny(), (torch.zeros(1, 3, 8, 8),)), path)
    return path


def _rewrite(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    """Copy a torch archive, replacing (or adding) entries named relative to its root folder."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        prefix = old.namelist()[0].split("/", 1)[0] + "/"
        for info in old.infolist():
            name = info.filename[len(prefix):]
            new.writestr(info, replace.pop(name) if name in replace else old.read(info))
        for name, data in replace.items():
            new.writestr(prefix + name, data)
    return target


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _read_entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0].split("/", 1)[0] + "/" + name)


def _pickled_sample_inputs(exported: Path, tmp_path: Path, marker: Path) -> Path:
    return _rewrite(exported, tmp_path / "evil.pt2", {"data/sample_inputs/model.pt": _saved(_Payload(marker))})


def _pickled_weight(exported: Path, tmp_path: Path, marker: Path) -> Path:
    config = json.loads(_read_entry(exported, "data/weights/model_weights_config.json"))
    config["config"]["0.weight"]["use_pickle"] = True
    return _rewrite(exported, tmp_path / "evil.pt2", {
        "data/weights/model_weights_config.json": json.dumps(config).encode(),
        "data/weights/" + config["config"]["0.weight"]["path_name"]: _saved(_Payload(marker))})


def _opaque_constant(exported: Path, tmp_path: Path, marker: Path) -> Path:
    config = {"config": {"evil": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}}}
    return _rewrite(exported, tmp_path / "evil.pt2", {
        "data/constants/model_constants_config.json": json.dumps(config).encode(),
        "data/constants/opaque_obj_0": pickle.dumps(_Payload(marker))})


def _cli(capsys, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.strip().splitlines()


def _refused(capsys, *args, phrase: str) -> str:
    code, lines = _cli(capsys, *args)
    assert code == 2 and len(lines) == 1, lines
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("build, phrase", [(_pickled_sample_inputs, "sample inputs are not plain tensors"),
                                           (_pickled_weight, "stored as a pickle"),
                                           (_opaque_constant, "custom object")],
                         ids=["sample-inputs", "use-pickle-weight", "opaque-constant"])
def test_malicious_export_is_refused_without_running_it(capsys, exported, tmp_path, build, phrase):
    live, marker = tmp_path / "live-marker", tmp_path / "marker"
    try:
        torch.export.load(str(build(exported, tmp_path, live)))
    except Exception:
        pass  # torch may fail after unpickling; what matters is that the payload ran
    assert live.exists(), "the hostile archive is not live: torch.export.load did not run its payload"
    capsys.readouterr()  # torch's own warnings while it ran the payload
    path = build(exported, tmp_path, marker)
    line = _refused(capsys, "estimate", path, phrase=phrase)
    assert "--trust-pickle" not in line
    assert not marker.exists()
    _refused(capsys, "estimate", path, "--trust-pickle", phrase=phrase)  # never a module pickle: no trusting it
    assert not marker.exists()


def test_malicious_export_through_the_cli(exported, tmp_path):
    marker = tmp_path / "marker"
    result = run_cli("estimate", _pickled_sample_inputs(exported, tmp_path, marker))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not marker.exists()


def test_clean_export_still_estimates(capsys, exported):
    code, _ = _cli(capsys, "estimate", exported, "--format", "json")
    assert code == 0


def test_export_calling_a_python_function_is_refused(capsys, exported, tmp_path):
    program = json.loads(_read_entry(exported, "models/model.json"))
    nodes = program["graph_module"]["graph"]["nodes"]
    nodes[0]["target"] = "torch.os.system"  # resolvable from `torch`: it would run when the program runs
    path = _rewrite(exported, tmp_path / "calls.pt2", {"models/model.json": json.dumps(program).encode()})
    _refused(capsys, "estimate", path, phrase="not a torch operator")


def test_torchscript_with_an_empty_record_is_refused_not_a_crash(tmp_path):
    source = tmp_path / "ok.ts"
    torch.jit.script(_tiny()).save(str(source))
    path = _rewrite(source, tmp_path / "empty-record.ts", {"data/0": b""})
    result = run_cli("estimate", path, "--input-size", "3x8x8")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "record data/0 holds 0 bytes" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_zip_bomb_is_too_large_not_a_pickle(capsys, tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", pickle.dumps({}))
        archive.writestr("bomb/data/0", bytes(32 << 20))  # 32 MiB of zeros deflate about 1000x, past the 100x cap
    assert path.stat().st_size < 1 << 20
    line = _refused(capsys, "estimate", path, "--arch", "cifar-resnet18", phrase="too large")
    assert "--trust-pickle" not in line
    result, peak = _child_peak_rss("estimate", str(path), "--arch", "cifar-resnet18")
    assert result.returncode == 2 and "too large" in result.stderr
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / (1 << 30):.2f} GiB"


@pytest.mark.parametrize("content", [b"\x00", os.urandom(4096)], ids=["one-byte", "random"])
def test_not_a_torch_file(capsys, tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    line = _refused(capsys, "estimate", path, phrase="not a torch archive")
    assert "--trust-pickle" not in line


def test_a_pickled_module_asks_for_trust(capsys, tmp_path):
    path = tmp_path / "module.pt"
    torch.save(_tiny(), path)
    _refused(capsys, "estimate", path, "--input-size", "3x8x8", phrase="--trust-pickle")
    code, _ = _cli(capsys, "estimate", path, "--input-size", "3x8x8", "--trust-pickle")
    assert code == 0


def test_unreadable_file_says_permission_denied(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_tiny().state_dict(), path)
    path.chmod(0)
    prefix: list[str] = []
    if os.access(path, os.R_OK):  # root reads mode 000 through CAP_DAC_OVERRIDE: run the child without it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: mode 000 leaves the file readable")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        result = subprocess.run([*prefix, sys.executable, "-m", "pisim", "estimate", str(path), "--arch",
                                 "cifar-resnet18"], capture_output=True, text=True, timeout=300)
    finally:
        path.chmod(0o600)
    assert result.returncode == 2, result.stderr
    assert "permission denied" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_symlink_loop(capsys, tmp_path):
    (tmp_path / "a.pt").symlink_to(tmp_path / "b.pt")
    (tmp_path / "b.pt").symlink_to(tmp_path / "a.pt")
    _refused(capsys, "estimate", tmp_path / "a.pt", phrase="symlink loop")


def test_file_name_over_255_bytes(capsys, tmp_path):
    _refused(capsys, "estimate", tmp_path / ("m" * 300 + ".pt"), phrase="file name too long")


def test_zip_entry_name_not_utf8(capsys, exported, tmp_path):
    path = tmp_path / "names.pt2"
    data = bytearray(exported.read_bytes())
    with zipfile.ZipFile(exported) as archive:
        name = archive.namelist()[-1].encode()
    data = data.replace(name, name[:-1] + b"\xff")  # local and central headers keep their UTF-8 flag
    path.write_bytes(bytes(data))
    _refused(capsys, "estimate", path, phrase="not valid UTF-8")


@pytest.mark.parametrize("state, phrase", [({1: torch.zeros(3)}, "int key"), (None, "refers to itself")],
                         ids=["int-key", "self-reference"])
def test_state_dict_shape(capsys, tmp_path, state, phrase):
    if state is None:
        state = {"conv.weight": torch.zeros(3)}
        state["state_dict"] = state
    path = tmp_path / "state.pt"
    torch.save(state, path)
    _refused(capsys, "estimate", path, "--arch", "cifar-resnet18", phrase=phrase)


def test_state_dict_promising_a_huge_head_costs_nothing(capsys, tmp_path):
    path = tmp_path / "head.pt"
    torch.save({"fc.weight": torch.zeros(100_000_000, 0)}, path)  # 100 M classes, read from its shape
    assert path.stat().st_size < 4096
    _refused(capsys, "estimate", path, "--arch", "cifar-resnet18", phrase="does not fit --arch cifar-resnet18")
    result, peak = _child_peak_rss("estimate", str(path), "--arch", "cifar-resnet18")
    assert result.returncode == 2 and "does not fit --arch cifar-resnet18" in result.stderr
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / (1 << 30):.2f} GiB"


def _child_peak_rss(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI in a child and read its own peak RSS (VmHWM belongs to the process image, so unlike getrusage's
    maxrss it does not carry the forking pytest's size across exec)."""
    code = ("import re, sys, runpy; sys.argv = ['pisim', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('pisim', run_name='__main__')\n"
            "finally:\n    status = open('/proc/self/status').read()\n"
            "    print('PEAK', int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) * 1024, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK ")]
    return result, float(peak[-1].split()[1])


@pytest.mark.parametrize("option", [("--num-classes", "100000"), ("--input-size", "3x100000x100000")],
                         ids=["largest-head-allowed", "ten-gigapixel-input"])
def test_huge_head_or_input_costs_no_memory(option):
    result, peak = _child_peak_rss("estimate", "cifar-resnet18", *option, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["relus"] > 0
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / (1 << 30):.2f} GiB"


def test_a_billion_classes_is_refused_in_one_line_before_anything_is_built():
    result, peak = _child_peak_rss("estimate", "cifar-resnet18", "--num-classes", "1000000000")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("PEAK ")] == [
        "pisim: error: argument --num-classes: expected an integer in [1, 100000], got '1000000000' "
        "(see `pisim estimate --help`)"]
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / (1 << 30):.2f} GiB"


@pytest.mark.slow  # the same fake-input path as the ten-gigapixel zoo test, through a TorchScript conversion
def test_huge_input_to_torchscript_is_fake(tmp_path):
    path = tmp_path / "model.ts"
    torch.jit.script(build_zoo_model("cifar-resnet20").eval()).save(str(path))
    result, peak = _child_peak_rss("estimate", str(path), "--input-size", "3x20000x20000", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / (1 << 30):.2f} GiB"


def test_optimizer_weights_go_through_the_same_checks(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_tiny().state_dict(), path)
    assert set(load_weights(path)) == set(_tiny().state_dict())
    damaged = _rewrite(path, tmp_path / "damaged.pt", {"data/0": b""})
    with pytest.raises(UserError, match="holds 0 bytes"):
        load_weights(damaged)
    torch.save(_tiny(), path)
    with pytest.raises(UserError, match="not a plain-tensor file"):
        load_weights(path)


def test_export_with_python_in_a_shape_expression_is_refused(capsys, tmp_path):
    """torch.export.load parses shape expressions with sympy.sympify, which evaluates them as Python."""
    dynamic = tmp_path / "dynamic.pt2"
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, 16, 16),),
                                          dynamic_shapes=({2: torch.export.Dim("h", min=4, max=64)},)), dynamic)
    text = _read_entry(dynamic, "models/model.json").decode()
    symbol = text.split("Symbol('", 1)[1].split("'", 1)[0]
    live = tmp_path / "live-marker"
    payload = f"__import__('os').system('touch {{}}') or Symbol('{symbol}', positive=True, integer=True)"
    for marker, name in [(live, "live.pt2"), (tmp_path / "marker", "evil.pt2")]:
        hostile = text.replace(f"Symbol('{symbol}', positive=True, integer=True)", payload.format(marker), 1)
        _rewrite(dynamic, tmp_path / name, {"models/model.json": hostile.encode()})
    try:
        torch.export.load(str(tmp_path / "live.pt2"))
    except Exception:
        pass
    assert live.exists(), "torch.export.load did not evaluate the shape expression"
    capsys.readouterr()
    _refused(capsys, "estimate", tmp_path / "evil.pt2", phrase="not arithmetic")
    assert not (tmp_path / "marker").exists()


def _weights_config_entry_not_an_object(exported: Path) -> dict[str, bytes]:
    config = json.loads(_read_entry(exported, "data/weights/model_weights_config.json"))
    config["config"]["0.weight"] = 7
    return {"data/weights/model_weights_config.json": json.dumps(config).encode()}


def _program_field_of_the_wrong_type(exported: Path) -> dict[str, bytes]:
    program = json.loads(_read_entry(exported, "models/model.json"))
    program["graph_module"]["graph"] = 0.5
    return {"models/model.json": json.dumps(program).encode()}


@pytest.mark.parametrize("damage, phrase", [(_weights_config_entry_not_an_object, "is not a payload config"),
                                            (_program_field_of_the_wrong_type, "is damaged: its program")],
                         ids=["weights-config", "program"])
def test_export_whose_json_has_wrong_types_is_damaged_not_a_traceback(capsys, exported, tmp_path, damage, phrase):
    """Found by the fuzz harness: torch's schema conversion trusts the JSON's shape."""
    damaged = _rewrite(exported, tmp_path / "damaged.pt2", damage(exported))
    _refused(capsys, "estimate", damaged, phrase=phrase)
