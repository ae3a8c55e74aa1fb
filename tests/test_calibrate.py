"""`pisim calibrate --quick` writes a complete, sourced hardware profile from real measurements."""
import pytest

from conftest import run_cli
from cost_models.crypto.field import DELPHI_PRIME
from cost_models.crypto.relu_circuit import relu_circuit
from pisim.tomlparser import tomllib

PROFILE_TIME_CONSTANTS = {"gc_garble_per_and", "gc_eval_per_and", "gc_encode_per_label", "he_ct_pt_multiply",
                          "he_key_switch", "he_ciphertext_io", "he_encrypt", "he_decrypt", "he_keygen", "share_mac",
                          "ot_sender_per_transfer", "ot_receiver_per_transfer"}


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("calibrate") / "this-machine.toml"
    done = run_cli("calibrate", "--quick", "--out", out, "--format", "csv", timeout=120)
    assert done.returncode == 0, done.stderr
    return out, done


def test_quick_profile_has_every_constant_with_provenance(quick_profile):
    out, _ = quick_profile
    profile = tomllib.loads(out.read_text())
    assert profile["schema"] == "pisim.profile/1" and profile["name"] == "this-machine"
    assert set(profile["constants"]) == PROFILE_TIME_CONSTANTS
    for name, constant in profile["constants"].items():
        assert constant["unit"] == "s" and constant["value"] > 0, name
        assert constant["repeats"] >= 1 and constant["spread"] >= 0 and "pisim calibrate" in constant["source"]
    assert profile["implementation"]["relu_and_gates"]["value"] == relu_circuit(DELPHI_PRIME).and_gates
    assert not set(profile["implementation"]) & PROFILE_TIME_CONSTANTS  # measured times are priced constants
    assert 300_000 < profile["implementation"]["he_ciphertext_bytes"]["value"] < 600_000
    provenance = profile["provenance"]
    assert provenance["cores"] >= 1 and provenance["run"] == "quick" and provenance["cpu"]
    assert provenance["libraries"]["tenseal"] != "not installed"


def test_quick_calibration_stays_under_a_minute_and_prints_its_plan(quick_profile):
    _, done = quick_profile
    profile_seconds = tomllib.loads(quick_profile[0].read_text())["provenance"]["seconds"]
    assert profile_seconds < 60
    assert "quick calibration: 12 benchmarks, about" in done.stderr
    assert done.stdout.splitlines()[0] == "constant,value,unit,repeats,spread"


def test_profile_times_are_consistent_with_the_work(quick_profile):
    constants = tomllib.loads(quick_profile[0].read_text())["constants"]
    # garbling hashes four blocks per AND gate, evaluation two: garbling cannot be the cheaper one
    assert constants["gc_garble_per_and"]["value"] > constants["gc_eval_per_and"]["value"]
    # a key switch and a plaintext multiply are milliseconds on a CPU, not micro- or whole seconds
    assert 1e-4 < constants["he_key_switch"]["value"] < 0.1


def test_unwritable_output_is_a_one_line_error_and_writes_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = run_cli("calibrate", "--quick", "--out", blocker / "profile.toml")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "is not a directory" in done.stderr
    assert blocker.read_text() == "x"


def test_profile_plugs_into_the_cost_model_and_estimate(quick_profile):
    from cost_models.profiles import load_profile

    out, _ = quick_profile
    profile = load_profile(out)
    assert profile["he_key_switch"] > 0 and profile.constants["gc_eval_per_and"].repeats == 5
    done = run_cli("estimate", "cifar-resnet20", "--protocol", "delphi", "--client-profile", out,
                   "--server-profile", out, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert '"client_profile": "this-machine"' in done.stdout
