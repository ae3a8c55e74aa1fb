"""`pisim validate` executes real layers and compares them with the cost model, term by term."""
import csv

import numpy as np
import pytest

import cost_models
from cost_models.calibrate import Sizes, calibrate, profile_toml
from cost_models.crypto.field import DELPHI_PRIME
from cost_models.validate import implementation_constants, select_layers, validate, with_implementation
from conftest import run_cli
from pisim.graph import capture
from pisim.zoo.registry import build_zoo_model

SMALL = Sizes("test", relus=2048, gc_repeats=1, he_repeats=1, he_batch=2, keygen_repeats=1)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "here.toml"
    path.write_text(profile_toml(calibrate(SMALL), "here"))
    return path


@pytest.fixture(scope="module")
def resnet20():
    return capture(build_zoo_model("cifar-resnet20"), (3, 32, 32)).graph


def test_relu_and_conv_layers_run_and_bytes_match_the_model(profile, resnet20):
    setting = with_implementation(cost_models.load_setting("delphi", "lan", str(profile), str(profile)),
                                  implementation_constants(profile))
    layers = select_layers(resnet20, ["layer1.0.relu1", "layer1.0.conv1"], setting)
    relu, conv = validate(resnet20, layers, setting, DELPHI_PRIME, np.random.default_rng(0))
    assert "output equals the plaintext ReLU" in relu.notes[0]
    assert "equals the plaintext conv mod t" in conv.notes[0]
    terms = {(t.layer, t.phase, t.field): t for t in relu.terms + conv.terms}
    n = 16 * 32 * 32
    # OT correction columns up, and the garbler's share labels online: exactly what the model counts
    assert terms[("layer1.0.relu1", "offline", "up_bytes")].measured == 16 * 41 * n + 32  # + the base-OT key
    assert terms[("layer1.0.relu1", "online", "down_bytes")].error_pct == 0
    # tables, output checks and mask labels go with the circuits: every byte the garbler sends is priced
    # (the OT sender bytes per transfer were averaged over the calibration's transfer count, base OTs included)
    offline_down = terms[("layer1.0.relu1", "offline", "down_bytes")]
    assert offline_down.parts.keys() == {"garbled tables", "output-label checks", "mask labels", "OT extension"}
    assert abs(offline_down.error_pct) < 0.1
    # OT extension costs the evaluating client compute, and the model prices it from the profile
    ot_receiver = terms[("layer1.0.relu1", "offline", "client_s")]
    assert ot_receiver.parts.keys() == {"OT extension (receiver)"} and ot_receiver.predicted > 0
    # ciphertexts both ways: the model's count times the calibrated ciphertext size, within SEAL's compression noise
    assert abs(terms[("layer1.0.conv1", "offline", "up_bytes")].error_pct) < 1
    assert abs(terms[("layer1.0.conv1", "offline", "down_bytes")].error_pct) < 1
    assert terms[("layer1.0.relu1", "online", "client_s")].parts.keys() == {"evaluate"}
    assert terms[("layer1.0.relu1", "online", "client_s")].measured > 0


def _validate_csv(profile, tolerance: str):
    done = run_cli("validate", "cifar-resnet20", "--layers", "layer3.0.relu1", "--profile", profile,
                   "--format", "csv", "--repeats", "1", "--tolerance", tolerance)
    return done, list(csv.DictReader(done.stdout.splitlines()))


@pytest.mark.parametrize("tolerance", ["0", "25"])
def test_cli_marks_each_term_against_the_tolerance_and_exits_1_exactly_when_one_misses(profile, tolerance):
    done, rows = _validate_csv(profile, tolerance)
    assert done.returncode in (0, 1), done.stderr
    assert list(rows[0]) == ["layer", "phase", "term", "unit", "predicted", "measured", "error (%)",
                             f"within {tolerance}%", "measured parts"]
    assert {row["phase"] for row in rows} == {"offline", "online"}
    marks = {row["within " + tolerance + "%"] for row in rows}
    assert marks <= {"ok", "miss"}
    for row in rows:  # the error column is rounded to 0.1 %: rows that close to the line may go either way
        error = abs(float(row["error (%)"])) if row["error (%)"] else 0.0
        if abs(error - float(tolerance)) > 0.05:
            assert row[f"within {tolerance}%"] == ("miss" if error > float(tolerance) else "ok"), row
    assert done.returncode == (1 if "miss" in marks else 0)
    assert (f"outside {tolerance}%: layer3.0.relu1" in done.stderr) == ("miss" in marks)
    if tolerance == "0":
        assert "miss" in marks  # measured seconds never equal the model's to the last digit


@pytest.mark.parametrize("args, message", [
    (["--layers", "layer9.relu"], "no layer 'layer9.relu'"),
    (["--layers", "linear"], "validate executes relu and conv2d layers"),
    (["--layers", "relu"], "needs this machine's profile"),
])
def test_bad_requests_are_one_line_errors(profile, args, message):
    extra = [] if "needs" in message else ["--profile", str(profile)]
    done = run_cli("validate", "cifar-resnet20", *args, *extra)
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_implementation_sizes_replace_the_protocols_everywhere_the_setting_holds_them():
    shipped = cost_models.load_setting("delphi")
    setting = with_implementation(shipped, {"relu_and_gates": 327.0, "not_a_delphi_constant": 1.0})
    assert setting.protocol.constants["relu_and_gates"].value == setting.context.constants["relu_and_gates"] == 327
    assert "not_a_delphi_constant" not in setting.context.constants
    assert shipped.protocol.constants["relu_and_gates"].value == shipped.context.constants["relu_and_gates"] == 496.75
