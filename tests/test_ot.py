"""OT extension delivers exactly the chosen label of each pair, at the bytes IKNP says."""
import numpy as np

from cost_models.crypto.aes import random_blocks
from cost_models.crypto.ot import KAPPA, BaseOtReceiver, BaseOtSender, ot_extension


def test_base_ot_receiver_gets_the_chosen_key_only():
    choices = np.array([0, 1, 1, 0, 1], dtype=bool)
    sender = BaseOtSender(len(choices))
    receiver = BaseOtReceiver(choices)
    points = receiver.points(sender.public)
    pairs = sender.key_pairs(points)
    got = receiver.keys(points)
    for (k0, k1), key, choice in zip(pairs, got, choices):
        assert key == (k1 if choice else k0)
        assert key != (k0 if choice else k1)


def test_extension_transfers_chosen_messages_with_iknp_bytes():
    m = 5003  # not a multiple of 8: the padding must not leak into the result
    zero, one = random_blocks(m), random_blocks(m)
    choices = np.random.default_rng(0).integers(0, 2, m).astype(bool)
    run = ot_extension(zero, one, choices)
    assert np.array_equal(run.received, np.where(choices[:, None], one, zero))
    padded = -(-m // 8) * 8
    assert run.bytes_sent["receiver"] == 32 + KAPPA * padded // 8  # base-OT public key + u matrix
    assert run.bytes_sent["sender"] == KAPPA * 32 + 2 * 16 * m  # base-OT points + both masked labels
    assert run.seconds["sender"] > 0 and run.seconds["receiver"] > 0


def test_extension_with_garbled_labels_decodes_the_evaluators_input():
    from cost_models.crypto.field import PrimeField
    from cost_models.crypto.garbling import Evaluator, Garbler
    from cost_models.crypto.relu_circuit import relu_circuit

    field = PrimeField(97)
    circuit = relu_circuit(97)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 97, 300, dtype=np.uint64)
    client = rng.integers(0, 97, 300, dtype=np.uint64)
    server = (x + np.uint64(97) - client) % np.uint64(97)
    garbled, keys = Garbler(circuit).garble(300)
    zero, one = keys.label_pairs("client_share")
    bits = field.to_bits(client)
    run = ot_extension(zero.reshape(-1, 2), one.reshape(-1, 2), bits.reshape(-1))
    labels = {"client_share": run.received.reshape(zero.shape),
              "server_share": keys.encode("server_share", field.to_bits(server)),
              "server_mask": keys.encode("server_mask", np.zeros_like(bits))}
    assert np.array_equal(field.from_bits(Evaluator(circuit).evaluate(garbled, labels)), field.relu(x))
