"""The real Cheetah (secretflow SPU) behind calibrate/validate --protocol cheetah.

Fast tests read output recorded from real SPU 0.9.5 runs (tests/data/spu/); the slow tests run SPU
itself in `.venv-spu` (`make spu-env`; CI builds it before `make test-slow`) and skip, saying so,
where that environment is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cost_models.spu_executor import SPU_VENV, fit_linear, parse_run
from cost_models.spu_runner import parse_profile

DATA = Path(__file__).parent / "data" / "spu"
ROOT = Path(__file__).resolve().parent.parent
needs_spu = pytest.mark.skipif(not (SPU_VENV / "bin" / "python").is_file(),
                               reason="no SPU environment (.venv-spu): run `make spu-env`")


def test_profile_log_gives_each_partys_bytes_and_messages_and_the_mpc_kernels():
    # party 0's log of one warm 2,000-element ReLU run: its "recv" figures are what party 1 sent
    parsed = parse_profile((DATA / "relu_2000_profile.log").read_text())
    assert parsed["bytes_sent"] == [154584, 42584]
    assert parsed["messages_sent"] == [20, 20]
    # only the MPC section's kernels, which add up to the link totals
    assert set(parsed["kernels"]) == {"msb_a2b", "mul_a1b", "add_ap", "negate_a", "broadcast"}
    assert sum(k["bytes_sent"][0] for k in parsed["kernels"].values()) == 154584
    assert parsed["kernels"]["msb_a2b"]["messages_sent"] == [18, 18]


def test_profile_log_without_link_details_is_an_error():
    with pytest.raises(RuntimeError, match="Link details"):
        parse_profile("[info] nothing profiled here\n")


def test_recorded_run_parses_into_layers_with_lowering_and_medians():
    text = (DATA / "run_relu1000_linear64x8.json").read_text()
    run = parse_run("[info] a log line SPU wrote to stdout\n" + text)
    assert (run.spu_version, run.field_bits, run.fraction_bits) == ("0.9.5", 64, 18)
    relu, linear = run.layers
    assert relu.kind == "relu" and relu.request["elements"] == 1000
    assert relu.lowering == "msb_a2b + mul_a1b"
    assert linear.lowering.startswith("mmul_aa")
    assert relu.max_abs_error < 1e-3
    only = relu.runs[0]
    assert relu.median(lambda m: m.bytes_sent[0]) == only.bytes_sent[0] > 0
    assert only.messages == sum(only.messages_sent)
    # the warm-up pays the one-time OT setup: far more messages than a warm run
    assert relu.warm_up.messages > 10 * only.messages


@pytest.mark.parametrize("text, why", [("", "no JSON"), ('{"schema": "other/1"}', "schema"),
                                        ('{"schema": "pisim.spu-run/1"}', "unreadable")])
def test_malformed_runner_output_is_refused(text, why):
    with pytest.raises(RuntimeError, match=why):
        parse_run(text)


def test_fit_recovers_a_line_and_reports_spread():
    fit = fit_linear([1000, 2000, 4000], [0.5 + 2e-5 * n for n in (1000, 2000, 4000)])
    assert fit.per_unit == pytest.approx(2e-5) and fit.fixed == pytest.approx(0.5)
    assert fit.points == 3 and fit.spread == pytest.approx(0, abs=1e-12)
    noisy = fit_linear([1000, 2000, 4000], [0.02, 0.05, 0.08])
    assert noisy.spread > 0
    with pytest.raises(ValueError, match="two different sizes"):
        fit_linear([1000, 1000], [1.0, 1.1])


def _graph():
    from pisim.graph import capture
    from pisim.zoo.registry import build_zoo_model
    return capture(build_zoo_model("cifar-resnet18"), (3, 32, 32)).graph


def test_conv_is_priced_as_the_im2col_product_spu_executes_a_1x1_conv_over_the_output():
    from cost_models.validate_cheetah import im2col_product, runner_request
    conv = next(op for op in _graph().ops if op.label == "layer2.0.conv1")  # 64 -> 128, 3x3, stride 2, 32x32 in
    product = im2col_product(conv)
    assert product.input_shapes == ((1, 64 * 9, 16, 16),)
    assert product.attrs["kernel_size"] == (1, 1) and product.attrs["stride"] == (1, 1)
    assert product.macs == conv.macs  # the same multiply-accumulates, rearranged
    assert runner_request(conv) == {"kind": "conv2d", "in_channels": 64, "out_channels": 128, "height": 32,
                                    "width": 32, "kernel": 3, "stride": 2, "padding": 1}


def test_spu_linear_layer_is_two_he_products_one_per_party_plus_the_truncation():
    # SPU multiplies two shared operands: the HE handler's cost, plus the same with the roles swapped
    import cost_models
    from cost_models.validate_cheetah import predicted_cost, spu_setting
    setting = spu_setting(cost_models.load_setting("cheetah", "loopback", threads=1), 64, 18)
    linear = next(op for op in _graph().ops if op.label == "linear")
    he = setting.protocol.ops[linear.kind].price(linear, 0, setting.context)
    truncation = setting.protocol.truncation["known_msb"].price(linear, linear.output_elements, setting.context)
    cost, handlers = predicted_cost(linear, setting)
    assert cost.online.up_bytes == pytest.approx(he.online.up_bytes + he.online.down_bytes
                                                 + truncation.online.up_bytes)
    assert cost.online.client_s == pytest.approx(he.online.client_s + he.online.server_s
                                                 + truncation.online.client_s)
    assert "twice" in handlers and "known_msb" in handlers


@pytest.mark.parametrize("spec", ["truncation:0", "truncation:x", "truncation:-5", "truncation:1000000000"])
def test_truncation_layer_spec_is_checked(spec):
    from cost_models.validate_cheetah import truncation_op
    from pisim.errors import UserError
    with pytest.raises(UserError, match="truncation:N"):
        truncation_op(spec)


@pytest.mark.slow
@needs_spu
def test_spu_runner_executes_cheetah_layers_and_counts_what_each_party_sends_and_the_flights():
    request = {"repeats": 3, "flight_delay_s": 0.05, "layers": [{"kind": "relu", "elements": 4096}, {"kind": "truncation", "elements": 4096},
                                        {"kind": "conv2d", "in_channels": 4, "out_channels": 4, "height": 8,
                                         "width": 8, "kernel": 3}]}
    done = subprocess.run([str(SPU_VENV / "bin" / "python"), "-I", str(ROOT / "cost_models" / "spu_runner.py")],
                          input=json.dumps(request), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    relu, truncation, conv = parse_run(done.stdout).layers
    for layer in (relu, truncation, conv):
        assert layer.max_abs_error < 1e-2  # SPU's fixed-point result equals the plaintext
        assert all(b > 0 for b in layer.runs[0].bytes_sent) and layer.runs[0].wall_s > 0
    assert "convolution" in conv.pphlo_ops and conv.lowering.startswith("mmul_aa")
    assert "trunc_a" in truncation.lowering
    # a truncation is a couple of flights (two messages each way); a ReLU's comparison tree takes more
    assert 1 <= truncation.sequential_flights <= 6
    assert relu.sequential_flights > truncation.sequential_flights


@pytest.mark.slow
@needs_spu
def test_calibrate_cheetah_quick_writes_a_profile_estimate_accepts(tmp_path):
    profile = tmp_path / "spu.toml"
    env = {"PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "pisim", "calibrate", "--protocol", "cheetah", "--quick",
                          "--out", str(profile)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **env})
    assert run.returncode == 0, run.stderr[-2000:]
    text = profile.read_text()
    assert "[measured.relu_seconds_per_element]" in text and 'spu = "0.9.5"' in text
    assert "[constants.silent_ot_per_byte]" in text and "[implementation.ring_bits]" in text
    estimate = subprocess.run([sys.executable, "-m", "pisim", "estimate", "cifar-resnet18", "--protocol", "cheetah",
                               "--client-profile", str(profile), "--server-profile", str(profile)],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert estimate.returncode == 0, estimate.stderr[-2000:]


def test_a_missing_spu_environment_is_one_line_saying_how_to_make_it(monkeypatch, tmp_path):
    from cost_models.spu_executor import SPU_PYTHON_VARIABLE, spu_python
    from pisim.errors import UserError
    monkeypatch.setenv(SPU_PYTHON_VARIABLE, str(tmp_path / "no-python"))
    with pytest.raises(UserError, match="make spu-env"):
        spu_python()
