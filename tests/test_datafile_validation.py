"""Protocol, profile and network files a user hands PISim are checked at the door: encoding, types, nesting and the
range of every number. Each broken file is one line and exit code 2 from the CLI, naming the file and the field,
and nothing is written."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from cost_models.datafiles import shipped
from pisim.cli import main

NETWORK = shipped("networks")["lan"]
PROFILE = shipped("profiles")["delphi-epyc7502"]
PROTOCOL = shipped("protocols")["delphi"]


def broken_copy(tmp_path: Path, source: Path, old: bytes, new: bytes) -> Path:
    data = source.read_bytes()
    assert old in data
    target = tmp_path / source.name
    target.write_bytes(data.replace(old, new, 1))
    return target


def nested(depth: int) -> bytes:
    return b"\nextra = " + b"[" * depth + b"]" * depth + b"\n"


# (file, bytes replaced, replacement, option that takes the file, what the one line must say)
BROKEN = [
    (PROFILE, b'name = "delphi-epyc7502"', b'name = "caf\xe9"', "--client-profile", "not UTF-8"),
    (PROFILE, b"value = 6.1398e-8", b"value = 1" + b"0" * 400, "--server-profile",
     "constants.gc_garble_per_and.value must be a finite number"),
    (PROFILE, b"value = 6.1398e-8", b"value = nan", "--server-profile", "must be a finite number"),
    (PROTOCOL, b'relu = "garbled_relu"', b'relu = ["garbled_relu"]', "--protocol", "ops.relu = ['garbled_relu']"),
    (PROTOCOL, b'relu = "garbled_relu"', b'relu = { name = "garbled_relu" }', "--protocol", "is not a handler"),
    (NETWORK, b"value = 1e9", b"value = 1e-320", "--network", "upload_bandwidth.value must be in [1000, 1e+13]"),
    (NETWORK, b'schema = "pisim.network/1"', b'schema = "pisim.network/1"' + nested(5000), "--network",
     "nested more than 32 levels"),
    (NETWORK, b'schema = "pisim.network/1"', b'schema = "pisim.network/1"' + nested(40), "--network",
     "nested more than 32 levels"),
]


@pytest.mark.parametrize("source, old, new, option, message", BROKEN,
                         ids=["not-utf8", "int-beyond-float", "nan", "list-as-handler", "table-as-handler",
                              "bandwidth-1e-320", "nested-5000", "nested-40"])
def test_broken_data_file_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, source, old, new, option,
                                                                message):
    path = broken_copy(tmp_path, source, old, new)
    out = tmp_path / "estimate.json"
    assert main(["estimate", "cifar-resnet20", "--protocol", "delphi", option, str(path), "-o", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert str(path) in stderr and message in stderr
    assert not out.exists()


def test_listing_a_broken_file_names_the_file_and_field(tmp_path, capsys):
    path = broken_copy(tmp_path, NETWORK, b"value = 1e9", b"value = 1e-320")
    assert main(["networks", str(path)]) == 2
    assert capsys.readouterr().err == (f"pisim: error: {path}: constants.upload_bandwidth.value must be in "
                                       f"[1000, 1e+13] bit/s, got 9.99989e-321\n")


def test_non_utf8_profile_through_a_real_interpreter(tmp_path):
    path = broken_copy(tmp_path, PROFILE, b'name = "delphi-epyc7502"', b'name = "caf\xe9"')
    out = tmp_path / "estimate.json"
    done = run_cli("estimate", "cifar-resnet20", "--input-size", "3x8x8", "--protocol", "delphi",
                   "--client-profile", path, "-o", out)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{path}: not UTF-8 text" in done.stderr
    assert not out.exists()
