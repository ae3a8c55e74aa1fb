"""`pisim estimate` on real files: every model format in, bad input out with exit 2 and one line."""
from __future__ import annotations

import json
import os
import pickle
import zipfile

import pytest
import torch

from conftest import assert_golden, run_cli
from pisim.zoo import build_zoo_model

MARKER_ENV = "PISIM_TEST_PICKLE_MARKER"


class _Exploit:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return build_zoo_model("cifar-resnet20").eval()


def relus_of(result) -> int:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["totals"]["relus"]


def assert_one_line_error(result, *phrases: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def test_zoo_name(tmp_path):
    # `python -m pisim` in an interpreter of its own: the entry point, not only main(), works
    assert relus_of(run_cli("estimate", "cifar-resnet18", "--format", "json", fresh_interpreter=True)) == 557_056


def test_state_dict_with_arch(tmp_path, resnet20):
    path = tmp_path / "resnet20.pt"
    torch.save({"state_dict": resnet20.state_dict()}, path)
    assert relus_of(run_cli("estimate", path, "--arch", "cifar-resnet20", "--format", "json")) == 188_416


def test_state_dict_without_arch_says_to_pass_it(tmp_path, resnet20):
    path = tmp_path / "resnet20.pt"
    torch.save(resnet20.state_dict(), path)
    assert_one_line_error(run_cli("estimate", path), "--arch")


def test_state_dict_of_another_network_is_rejected(tmp_path, resnet20):
    path = tmp_path / "resnet20.pt"
    torch.save(resnet20.state_dict(), path)
    assert_one_line_error(run_cli("estimate", path, "--arch", "cifar-resnet18"), "does not fit --arch cifar-resnet18")


def test_torchscript_archive(tmp_path, resnet20):
    path = tmp_path / "resnet20.ts"
    torch.jit.trace(resnet20, torch.zeros(1, 3, 32, 32)).save(str(path))
    result = run_cli("estimate", path, "--input-size", "3x32x32", "--format", "json")
    assert relus_of(result) == 188_416


def test_torch_export_archive_knows_its_input_size(tmp_path, resnet20):
    path = tmp_path / "resnet20.pt2"
    torch.export.save(torch.export.export(resnet20, (torch.zeros(1, 3, 32, 32),)), path)
    result = run_cli("estimate", path, "--format", "json")
    assert relus_of(result) == 188_416
    assert json.loads(result.stdout)["capture_method"] == "torch.export"


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump(_Exploit(str(marker)), handle)
    assert_one_line_error(run_cli("estimate", path), "--trust-pickle")
    assert not marker.exists()


def test_full_module_pickle_loads_only_with_trust(tmp_path, resnet20):
    path = tmp_path / "module.pt"
    torch.save(resnet20, path)
    assert_one_line_error(run_cli("estimate", path, "--input-size", "3x32x32"), "--trust-pickle")
    result = run_cli("estimate", path, "--input-size", "3x32x32", "--trust-pickle", "--format", "json")
    assert relus_of(result) == 188_416


def test_truncated_file(tmp_path, resnet20):
    whole = tmp_path / "whole.pt"
    torch.save(resnet20.state_dict(), whole)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole.read_bytes()[:5000])
    assert_one_line_error(run_cli("estimate", truncated, "--arch", "cifar-resnet20"), "not a model file")


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert_one_line_error(run_cli("estimate", path), "not a model file")


def test_missing_file(tmp_path):
    assert_one_line_error(run_cli("estimate", tmp_path / "absent.pt"), "no such file")


def test_unknown_name():
    assert_one_line_error(run_cli("estimate", "resnet9000"), "unknown model name", "cifar-resnet18")


@pytest.mark.parametrize("size", ["3x", "axbxc", "3x0x32", ""])
def test_malformed_input_size(size):
    assert_one_line_error(run_cli("estimate", "cifar-resnet20", "--input-size", size), "--input-size")


def test_rejected_input_shape_writes_nothing(tmp_path):
    out = tmp_path / "out.csv"
    result = run_cli("estimate", "cifar-resnet20", "--input-size", "1x32x32", "--output", out)
    assert_one_line_error(result, "rejects input size 1x32x32")
    assert not out.exists()


def test_strict_turns_unsupported_ops_into_an_error(tmp_path):
    path = tmp_path / "odd.pt2"

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(torch.relu(x), dim=1)

    torch.export.save(torch.export.export(Odd(), (torch.zeros(1, 4),)), path)
    lenient = run_cli("estimate", path)
    assert lenient.returncode == 0 and "UNSUPPORTED" in lenient.stdout and "cumsum" in lenient.stdout
    assert_one_line_error(run_cli("estimate", path, "--strict"), "--strict", "cumsum")


def test_output_file_is_written_whole(tmp_path):
    out = tmp_path / "deep" / "table.tex"
    result = run_cli("estimate", "cifar-resnet20", "--format", "latex", "--output", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("% requires \\usepackage{booktabs}") and text.rstrip().endswith("\\end{table}")
    assert [p.name for p in out.parent.iterdir()] == ["table.tex"]  # no temporary left behind


@pytest.mark.parametrize("fmt,suffix", [("table", "txt"), ("md", "md"), ("csv", "csv"), ("json", "json"),
                                        ("latex", "tex")])
def test_estimate_table_golden(fmt, suffix):
    result = run_cli("estimate", "cifar-resnet20", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert_golden(f"estimate_counts_cifar_resnet20.{suffix}", result.stdout)


def test_atomic_writes_honour_the_umask(tmp_path):
    from pisim.io import atomic_write

    previous = os.umask(0o022)
    try:
        atomic_write(tmp_path / "result.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o644
