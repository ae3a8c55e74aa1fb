"""The `optimizer` command line: help that teaches, one-line errors with exit 2 and nothing written."""
import pytest

from conftest import run_cli
from optimizer.cli import main
from pisim.cli.arguments import duration


@pytest.mark.parametrize("text, seconds", [("10s", 10.0), ("500ms", 0.5), ("2min", 120.0), ("1.5", 1.5)])
def test_budget_units(text, seconds):
    assert duration(text) == seconds


def test_help_names_the_defaults_and_the_outputs():
    process = run_cli("search", "--help", module="optimizer", fresh_interpreter=True)  # `python -m optimizer`
    assert process.returncode == 0
    for phrase in ("--latency-budget", "cifar-resnet20", "digits", "Atom", "frontier.json", "--resume",
                   "--kd-temperature", "pisim estimate"):
        assert phrase in process.stdout


def test_missing_data_is_one_line_exit_2_naming_data_dir_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    process = run_cli("search", "--latency-budget", "10s", "--out", out, "--dataset", "cifar10", module="optimizer")
    assert process.returncode == 2 and process.stderr.count("\n") == 1
    assert "--data-dir" in process.stderr and "Traceback" not in process.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagefolder", "--data-dir", "surely-no-such-dir"], "--data-dir"),
    (["--protocol", "no-such-protocol"], "no-such-protocol"),
    (["--kd-weight", "2"], "--kd-weight"),
    (["--resume"], "no search to resume"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["search", "--latency-budget", "10s", "--out", str(out), *args]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1
    assert not out.exists()


def test_bad_budget_is_rejected_by_the_parser():
    process = run_cli("search", "--latency-budget", "10 parsecs", module="optimizer")
    assert process.returncode == 2 and "is not a duration" in process.stderr
