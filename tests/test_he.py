"""BFV at Delphi's parameters and the Gazelle-packed convolution, against plaintext arithmetic mod t."""
import numpy as np
import pytest
import torch

from cost_models.crypto.field import DELPHI_PRIME
from cost_models.crypto.he import Bfv, ConvPlan, ConvShape, he_convolution, rotation_key_switches


@pytest.fixture(scope="module")
def bfv():
    return Bfv(DELPHI_PRIME)


def torch_conv_mod_t(image, weight, stride):
    out = torch.nn.functional.conv2d(torch.tensor(image, dtype=torch.float64)[None],
                                     torch.tensor(weight, dtype=torch.float64), stride=stride,
                                     padding=weight.shape[-1] // 2)[0]
    return out.numpy().astype(np.int64) % DELPHI_PRIME


def test_plain_modulus_must_allow_batching():
    with pytest.raises(ValueError, match="not 1 mod 16384"):
        Bfv(DELPHI_PRIME + 2)


def test_bfv_roundtrip_multiply_rotate(bfv):
    t = DELPHI_PRIME
    rng = np.random.default_rng(0)
    values = rng.integers(0, t, bfv.slots, dtype=np.uint64)
    weights = rng.integers(0, t, bfv.slots, dtype=np.uint64)
    ct = bfv.deserialize_ciphertext(bfv.serialize(bfv.encrypt(values)))
    assert np.array_equal(bfv.decrypt(ct), values)
    product = bfv.decrypt(_apply(bfv.evaluator.multiply_plain, ct, bfv.encode(weights)))
    expected = [(int(a) * int(b)) % t for a, b in zip(values, weights)]
    assert product.tolist() == expected
    half = bfv.slots // 2
    rotated = bfv.decrypt(_apply(bfv.evaluator.rotate_rows, ct, 5, bfv.galois_keys)).reshape(2, half)
    assert np.array_equal(rotated, np.roll(values.reshape(2, half), -5, axis=1))
    swapped = bfv.decrypt(_apply(bfv.evaluator.rotate_columns, ct, bfv.galois_keys)).reshape(2, half)
    assert np.array_equal(swapped, values.reshape(2, half)[::-1])


def _apply(op, *args):
    import tenseal.sealapi as seal
    out = seal.Ciphertext()
    op(*args, out)
    return out


@pytest.mark.parametrize("in_ch, out_ch, size, kernel, stride", [
    (32, 32, 16, 3, 1),   # both halves, two output halves: the general diagonal path
    (6, 20, 4, 3, 2),     # strided, channel padding
    (3, 16, 16, 3, 1),    # one output half (Delphi's half_perms = 1 path)
    (16, 64, 8, 1, 2),    # 1x1 strided shortcut
])
def test_gazelle_convolution_equals_torch_convolution_mod_t(bfv, in_ch, out_ch, size, kernel, stride):
    rng = np.random.default_rng(in_ch * 1000 + out_ch)
    image = rng.integers(0, 1 << 20, (in_ch, size, size))
    weight = rng.integers(-128, 128, (out_ch, in_ch, kernel, kernel))
    run = he_convolution(bfv, image, weight, stride, rng=rng)
    assert np.array_equal(run.output.astype(np.int64), torch_conv_mod_t(image, weight, stride))


def test_executed_operations_are_delphis_counts(bfv):
    rng = np.random.default_rng(7)
    run = he_convolution(bfv, rng.integers(0, 100, (32, 16, 16)), rng.integers(-3, 4, (32, 32, 3, 3)))
    plan = run.plan
    assert run.operations["multiply_plain"] == plan.multiplies == 2 * 1 * 16 * 9
    assert run.operations["rotate_rows"] + run.operations["rotate_columns"] == plan.rotations == 31
    assert run.bytes_sent["client"] > 0 and run.bytes_sent["server"] > 0


def test_plan_matches_delphi_layer_arithmetic():
    stage1 = ConvPlan(ConvShape(64, 64, 32, 32, 3))  # papers.md 2.2/2.2b: 72 uploads, 4608 multiplies, 8 returned
    assert (stage1.uploaded_ciphertexts, stage1.multiplies, stage1.output_ciphertexts) == (72, 4608, 8)
    assert stage1.rotations == 8 * 8 * 7
    assert ConvPlan(ConvShape(64, 128, 32, 32, 3, stride=2)).output_ciphertexts == 16


def test_rotation_key_switches_follow_the_naf():
    row = 4096
    assert [rotation_key_switches(s, row) for s in (1, 3, 1024, 3072, 1536, 7)] == [1, 2, 1, 1, 2, 2]
