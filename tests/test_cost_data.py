"""Shipped protocol, profile and network files load; broken ones are refused with one line naming the problem."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import cost_models
from conftest import run_cli
from cost_models.datafiles import shipped
from cost_models.networks import load_network
from cost_models.profiles import PROFILE_CONSTANTS, load_profile
from cost_models.protocols import load_protocol
from pisim.errors import UserError


@pytest.mark.parametrize("kind,load", [("protocols", load_protocol), ("profiles", load_profile),
                                       ("networks", load_network)])
def test_every_shipped_file_loads_and_every_constant_names_a_source(kind, load):
    names = shipped(kind)
    assert names
    for name in names:
        item = load(name)
        assert item.name == name
        assert all(len(c.source) > 15 for c in item.constants.values()), name


def test_shipped_choices_the_issue_asks_for():
    assert {"delphi", "client-garbler", "gazelle", "cheetah"} <= set(shipped("protocols"))
    assert {"delphi-epyc7502", "atom-z8350"} <= set(shipped("profiles"))
    cryptonite = load_network("cryptonite")
    assert (cryptonite.upload_bits_per_s, cryptonite.download_bits_per_s) == (100e6, 500e6)
    assert {"lan", "wan"} <= set(shipped("networks"))


def copy_with(tmp_path: Path, source: Path, pattern: str, replacement: str) -> Path:
    text = source.read_text()
    changed = re.sub(pattern, replacement, text, count=1, flags=re.S)
    assert changed != text
    target = tmp_path / source.name
    target.write_text(changed)
    return target


NETWORK = shipped("networks")["lan"]
PROFILE = shipped("profiles")["delphi-epyc7502"]
PROTOCOL = shipped("protocols")["delphi"]


@pytest.mark.parametrize("source,pattern,replacement,loader,message", [
    (NETWORK, r"value = 1e9", "value = 0", load_network, "upload_bandwidth.value must be in [1000, 1e+13] bit/s"),
    (NETWORK, r"value = 1e9", "value = -5", load_network, "must be in [1000, 1e+13] bit/s"),
    (NETWORK, r'unit = "bit/s"', 'unit = "Mbit/s"', load_network, "unit must be 'bit/s'"),
    (NETWORK, r"\[constants.rtt\].*", "", load_network, "missing constants: rtt"),
    (PROFILE, r'schema = "pisim.profile/1"', 'schema = "x"', load_profile, "schema must be"),
    (PROFILE, r'source = "[^"]*"', 'source = ""', load_profile, "source must say"),
    (PROFILE, r"value = 6.1398e-8", 'value = "fast"', load_profile, "must be a finite number"),
    (PROFILE, r"\]\nvalue", "\nvalue", load_profile, "malformed TOML"),
    (PROTOCOL, r'relu = "garbled_relu"', 'relu = "magic"', load_protocol, "is not a handler"),
    (PROTOCOL, r'conv2d = ', 'conv3d = ', load_protocol, "is not an op kind"),
    (PROTOCOL, r'garbler = "server"', 'garbler = "nobody"', load_protocol, "roles.garbler must be one of"),
    (PROTOCOL, r"\[constants.share_bits\].*?(?=\[constants)", "", load_protocol, "missing constants: share_bits"),
])
def test_broken_files_are_refused_with_the_reason(tmp_path, source, pattern, replacement, loader, message):
    broken = copy_with(tmp_path, source, pattern, replacement)
    with pytest.raises(UserError, match=re.escape(message)):
        loader(broken)


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(UserError, match="shipped: .*delphi"):
        cost_models.load_setting("spdz")
    with pytest.raises(UserError, match="unknown network 'moon'"):
        cost_models.load_setting("delphi", "moon")
    with pytest.raises(UserError, match="unknown profile"):
        cost_models.load_setting("delphi", client_profile="cray-1")
    with pytest.raises(UserError, match="threads"):
        cost_models.load_setting("delphi", threads=0)


def test_a_calibrated_profile_with_repeats_and_spread_is_accepted(tmp_path):
    lines = ['schema = "pisim.profile/1"', 'name = "calibrated"', 'description = "a calibration run"']
    for key in PROFILE_CONSTANTS:
        lines += [f"[constants.{key}]", "value = 1.5e-6", 'unit = "s"', 'source = "pisim calibrate, this machine"',
                  "repeats = 20", "spread = 1e-8"]
    path = tmp_path / "calibrated.toml"
    path.write_text("\n".join(lines) + "\n")
    profile = load_profile(path)
    assert profile.constants["he_key_switch"].repeats == 20 and profile["he_key_switch"] == 1.5e-6


def test_cli_rejects_bad_settings_with_exit_2_one_line_and_no_output_file(tmp_path):
    zero = copy_with(tmp_path, NETWORK, r"value = 1e9", "value = 0")
    out = tmp_path / "estimate.json"
    for args, phrase in [(["--protocol", "nope"], "unknown protocol 'nope'"),
                         (["--protocol", "delphi", "--network", str(zero)], "must be in [1000, 1e+13] bit/s"),
                         (["--protocol", "delphi", "--server-profile", "missing.toml"], "no such profile file"),
                         (["--network", "wan"], "need --protocol")]:
        result = run_cli("estimate", "cifar-resnet20", *args, "--format", "json", "-o", out)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and phrase in result.stderr
        assert "Traceback" not in result.stderr and not out.exists()


def test_listing_names_every_shipped_protocol():
    listing = run_cli("protocols")
    assert listing.returncode == 0
    assert all(name in listing.stdout for name in shipped("protocols"))


@pytest.mark.parametrize("command,name,expected", [("protocols", "delphi", "relu_and_gates"),
                                                    ("networks", "wan", "download_bandwidth"),
                                                    ("profiles", "atom-z8350", "gc_eval_per_and")])
def test_showing_one_file_lists_constants_with_sources(command, name, expected):
    shown = run_cli(command, name, "--format", "csv")
    assert shown.returncode == 0
    header, *rows = shown.stdout.splitlines()
    assert header == "constant,value,unit,source"
    assert any(row.startswith(expected + ",") for row in rows)
