"""Both CLIs at the door: garbage numbers, unwritable outputs and broken results files are refused before any
work with one line and exit code 2, nothing escapes as a traceback, and every JSON written is strict."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import optimizer.cli
import pisim.cli
import pisim.cli.models
from conftest import run_cli
from optimizer.io import write_json
from pisim.errors import UserError
from pisim.io import dumps_json
from pisim.report import Column, Table

SEED0 = Path(__file__).parent / "data" / "report" / "search_seed0.json"
BUDGET = ["search", "--latency-budget", "10s"]


def assert_one_line_exit_2(code: int, stderr: str, *phrases: str) -> None:
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for phrase in phrases:
        assert phrase in stderr, stderr


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file: any path beneath it is in a directory that cannot exist."""
    path = tmp_path / "blocker"
    path.write_text("keep")
    return path


# --- output paths are checked before any work ------------------------------------------------------------------

OUTPUTS = [
    ("pisim", ["estimate", "cifar-resnet20", "-o", "{blocker}/sub/out.json"], "is not a directory"),
    ("pisim", ["estimate", "cifar-resnet20", "-o", "{tmp}"], "it is a directory"),
    ("pisim", ["estimate", "cifar-resnet20", "--protocol", "delphi", "--plot", "{blocker}/b.png"],
     "is not a directory"),
    ("pisim", ["report", str(SEED0), "--plot", "{tmp}/dir.png"], "it is a directory"),
    ("pisim", ["report", str(SEED0), "-o", "/proc/pisim-report.txt"], "/proc is not writable"),
    ("pisim", ["calibrate", "--quick", "--out", "{blocker}/profile.toml"], "is not a directory"),
    ("optimizer", [*BUDGET, "--out", "{blocker}"], "it is a file, not a directory"),
    ("optimizer", [*BUDGET, "--out", "{blocker}/run"], "is not a directory"),
    ("optimizer", [*BUDGET, "--out", "{tmp}/run", "--cache-dir", "{blocker}"], "it is a file, not a directory"),
]


@pytest.mark.parametrize("cli, args, message", OUTPUTS,
                         ids=["o-under-file", "o-onto-dir", "plot-under-file", "plot-onto-dir", "o-into-proc",
                              "calibrate-under-file", "out-onto-file", "out-under-file", "cache-onto-file"])
def test_unwritable_output_is_refused_before_work(tmp_path, blocker, capsys, cli, args, message):
    (tmp_path / "dir.png").mkdir()
    before = sorted(tmp_path.rglob("*"))
    argv = [a.format(blocker=blocker, tmp=tmp_path) for a in args]
    main = pisim.cli.main if cli == "pisim" else optimizer.cli.main
    assert_one_line_exit_2(main(argv), capsys.readouterr().err, "cannot write", message)
    assert sorted(tmp_path.rglob("*")) == before and blocker.read_text() == "keep"


def test_calibrate_refuses_an_unwritable_directory_before_the_first_benchmark():
    # /proc refuses new files even to root, for whom os.access says yes
    done = run_cli("calibrate", "--quick", "--out", "/proc/pisim-profile.toml", timeout=120)
    # one line: the plan the benchmarks announce first never printed
    assert_one_line_exit_2(done.returncode, done.stderr, "--out", "/proc is not writable")
    assert not Path("/proc/pisim-profile.toml").exists()


# --- numeric flags are finite and in range -------------------------------------------------------------------

FLAGS = [
    ("optimizer", ["--lr", "nan"], "--lr"),
    ("optimizer", ["--kd-temperature", "nan"], "--kd-temperature"),
    ("optimizer", ["--kd-weight", "inf"], "--kd-weight"),
    ("optimizer", ["--latency-budget", "1e309s"], "--latency-budget"),
    ("optimizer", ["--seed", str(2**64)], "--seed"),
    ("optimizer", ["--seed", "-1"], "--seed"),
    ("optimizer", ["--device", "tpu:7"], "--device"),
    ("optimizer", ["--threads", "0"], "--threads"),
    ("optimizer", ["--epochs", "1e9"], "--epochs"),
    ("optimizer", ["--strategy", "fine-grained", "--gate-lr", "nan"], "--gate-lr"),
    ("optimizer", ["--executor", "ray", "--gpus-per-trial", "nan"], "--gpus-per-trial"),
    ("pisim", ["estimate", "cifar-resnet20", "--protocol", "delphi", "--threads", "100000"], "--threads"),
    ("pisim", ["validate", "cifar-resnet20", "--layers", "relu", "--seed", str(2**64)], "--seed"),
    ("pisim", ["validate", "cifar-resnet20", "--layers", "relu", "--tolerance", "nan"], "--tolerance"),
]


@pytest.mark.parametrize("cli, args, flag", FLAGS, ids=[" ".join(a[-2:]) for _, a, _ in FLAGS])
def test_garbage_number_is_refused_while_parsing(tmp_path, capsys, cli, args, flag):
    out = tmp_path / "out"
    if cli == "optimizer":
        code = optimizer.cli.main([*BUDGET, *args, "--out", str(out)])
    else:
        code = pisim.cli.main([*args, "-o", str(out)])
    assert_one_line_exit_2(code, capsys.readouterr().err, f"argument {flag}", "--help")
    assert not out.exists()


def test_a_cuda_device_this_machine_lacks_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    code = optimizer.cli.main([*BUDGET, "--device", "cuda:4096", "--out", str(out)])
    assert_one_line_exit_2(code, capsys.readouterr().err, "--device cuda:4096: this machine has")
    assert not out.exists()


def test_nan_learning_rate_through_a_real_interpreter(tmp_path):
    out = tmp_path / "run"
    done = run_cli(*BUDGET, "--lr", "nan", "--out", out, module="optimizer", timeout=120)
    assert_one_line_exit_2(done.returncode, done.stderr, "--lr", "finite")
    assert not out.exists()


# --- nothing escapes a handler ----------------------------------------------------------------------------------

def _raise(error: BaseException):
    def fail(*_args, **_kwargs):
        raise error
    return fail


@pytest.mark.parametrize("argv", [["models"], ["models", "--format", "json"]])
def test_an_unexpected_error_is_one_line_exit_2(monkeypatch, capsys, argv):
    monkeypatch.setattr(pisim.cli.models, "torchvision_classifiers", _raise(RuntimeError("boom\nsecond line")))
    assert_one_line_exit_2(pisim.cli.main(argv), capsys.readouterr().err, "RuntimeError: boom second line",
                           "--debug")


@pytest.mark.parametrize("argv", [["--debug", "models"], ["models", "--debug"]])
def test_debug_shows_the_traceback(monkeypatch, capsys, argv):
    monkeypatch.setattr(pisim.cli.models, "torchvision_classifiers", _raise(RuntimeError("boom")))
    assert pisim.cli.main(argv) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" in stderr and stderr.endswith("pisim: error: unexpected RuntimeError: boom "
                                                     "(rerun with --debug for the traceback)\n")


def test_an_os_error_names_the_path(monkeypatch, capsys):
    monkeypatch.setattr(pisim.cli.models, "torchvision_classifiers",
                        _raise(PermissionError(13, "Permission denied", "/some/file")))
    assert pisim.cli.main(["models"]) == 2
    assert capsys.readouterr().err == "pisim: error: /some/file: Permission denied\n"


def test_interrupt_stays_130(monkeypatch, capsys):
    monkeypatch.setattr(pisim.cli.models, "torchvision_classifiers", _raise(KeyboardInterrupt()))
    assert pisim.cli.main(["models"]) == 130
    assert capsys.readouterr().err == "pisim: interrupted\n"


def test_the_optimizer_catches_what_escapes_its_search(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(optimizer.cli, "run_search", _raise(ValueError("odd")))
    code = optimizer.cli.main([*BUDGET, "--out", str(tmp_path / "run")])
    assert_one_line_exit_2(code, capsys.readouterr().err, "optimizer: error: unexpected ValueError: odd")


# --- strict JSON out ---------------------------------------------------------------------------------------------

def test_non_finite_json_is_refused_naming_the_field():
    with pytest.raises(UserError, match=r"candidates\[1\]\.latency\.online_s = inf"):
        dumps_json({"candidates": [{"latency": {"online_s": 1.0}}, {"latency": {"online_s": math.inf}}]})


def test_a_table_with_nan_is_not_rendered_as_json():
    table = Table("t", [Column("latency", "latency", "s")], [{"latency": math.nan}])
    with pytest.raises(UserError, match=r"rows\[0\]\.latency = nan"):
        table.render("json")


def test_write_json_refuses_inf_and_writes_nothing(tmp_path):
    path = tmp_path / "frontier.json"
    with pytest.raises(UserError, match="latency_budget_s = inf"):
        write_json(path, {"setting": {"latency_budget_s": math.inf}})
    assert list(tmp_path.iterdir()) == []


# --- `pisim report` on broken results ---------------------------------------------------------------------------

def edited_seed(tmp_path: Path, edit) -> Path:
    document = json.loads(SEED0.read_text())
    edit(document)
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps(document))  # json.dumps writes NaN and Infinity as the red team's files had them
    return path


def _latency(value):
    return lambda d: d["candidates"][0]["latency"].__setitem__("online_s", value)


REPORTS = [
    (_latency(math.nan), "NaN is not a JSON number"),
    (_latency(math.inf), "Infinity is not a JSON number"),
    (_latency(-1.0), "'candidates[0].latency.online_s' must be a finite number >= 0"),
    (_latency(10**400), "'candidates[0].latency.online_s' must be a finite number >= 0"),
    (lambda d: d["baseline"]["communication"].__setitem__("online_bytes", "lots"), "must be int or float"),
    (lambda d: d["setting"].__setitem__("threads", "four"), "'setting.threads' must be int"),
    (lambda d: d["setting"].__setitem__("client_profile", ["atom"]), "'setting.client_profile' must be str"),
    (lambda d: d.__setitem__("seed", 1.5), "'seed' must be int"),
    (lambda d: d.__setitem__("extra", json.loads("[" * 40 + "]" * 40)), "nested more than 32 levels"),
]


@pytest.mark.parametrize("edit, message", REPORTS,
                         ids=["nan", "inf", "negative", "beyond-float", "bytes-str", "threads-str",
                              "profile-list", "seed-float", "nested"])
def test_broken_results_are_invalid_input(tmp_path, capsys, edit, message):
    path, out = edited_seed(tmp_path, edit), tmp_path / "table.md"
    code = pisim.cli.main(["report", str(path), "--compare", "deepreduce", "-o", str(out)])
    assert_one_line_exit_2(code, capsys.readouterr().err, str(path), message)
    assert not out.exists()


def test_deeply_nested_results_file(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_exit_2(pisim.cli.main(["report", str(path)]), capsys.readouterr().err, "nested more than")


def test_nan_latency_is_never_best_through_a_real_interpreter(tmp_path):
    path, out = edited_seed(tmp_path, _latency(math.nan)), tmp_path / "table.md"
    done = run_cli("report", path, "--format", "md", "-o", out, timeout=120)
    assert_one_line_exit_2(done.returncode, done.stderr, "NaN is not a JSON number")
    assert not out.exists()
