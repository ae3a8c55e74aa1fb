"""Garbled-circuit ReLU: the real circuit, garbled and evaluated, against the plaintext ReLU."""
import numpy as np
import pytest

from cost_models.crypto.field import DELPHI_PRIME, PrimeField
from cost_models.crypto.garbling import Evaluator, GarbledCircuitError, Garbler
from cost_models.crypto.relu_circuit import relu_circuit


def shares_with_edges(field: PrimeField, n: int, seed: int):
    """Random secret-shared inputs, the first ones at the edges around 0 and p/2."""
    rng = np.random.default_rng(seed)
    p = field.prime
    x = rng.integers(0, p, n, dtype=np.uint64)
    edges = [0, 1, 2, field.half - 1, field.half, field.half + 1, field.half + 2, p - 2, p - 1]
    x[: len(edges)] = edges
    client = rng.integers(0, p, n, dtype=np.uint64)
    client[len(edges): 2 * len(edges)] = [0, p - 1, 1, field.half, field.half + 1, 0, p - 1, 0, p - 1]
    server = (x + np.uint64(p) - client) % np.uint64(p)
    mask = rng.integers(0, p, n, dtype=np.uint64)
    return x, client, server, mask


def garble_and_evaluate(field, client, server, mask, chunk=4096, tamper=None):
    circuit = relu_circuit(field.prime)
    garbled, keys = Garbler(circuit, chunk).garble(len(client))
    labels = {
        "client_share": keys.encode("client_share", field.to_bits(client)),
        "server_share": keys.encode("server_share", field.to_bits(server)),
        "server_mask": keys.encode("server_mask", field.to_bits(mask)),
    }
    if tamper:
        tamper(garbled, labels)
    return field.from_bits(Evaluator(circuit, chunk).evaluate(garbled, labels))


@pytest.mark.parametrize("prime", [DELPHI_PRIME, 97])
def test_plain_circuit_computes_masked_relu(prime):
    field = PrimeField(prime)
    x, client, server, mask = shares_with_edges(field, 3000, seed=1)
    circuit = relu_circuit(prime)
    bits = circuit.evaluate_plain({"client_share": field.to_bits(client), "server_share": field.to_bits(server),
                                   "server_mask": field.to_bits(mask)})
    assert np.array_equal(field.from_bits(bits), (field.relu(x) + mask) % np.uint64(prime))


def test_garbled_relu_equals_plaintext_relu_on_random_and_edge_inputs():
    field = PrimeField(DELPHI_PRIME)
    x, client, server, mask = shares_with_edges(field, 5000, seed=2)
    out = garble_and_evaluate(field, client, server, mask, chunk=1536)  # several chunks, a ragged last one
    relu = (out + np.uint64(field.prime) - mask) % np.uint64(field.prime)  # the server's share is -mask
    assert np.array_equal(relu, field.relu(x))
    assert relu[: 9].tolist() == [0, 1, 2, field.half - 1, field.half, 0, 0, 0, 0]


def test_small_field_exhaustively():
    field = PrimeField(97)
    x = np.repeat(np.arange(97, dtype=np.uint64), 5)
    client = np.random.default_rng(3).integers(0, 97, x.size, dtype=np.uint64)
    server = (x + np.uint64(97) - client) % np.uint64(97)
    out = garble_and_evaluate(field, client, server, np.zeros_like(x))
    assert np.array_equal(out, field.relu(x))


def test_and_gates_and_table_bytes_come_from_the_circuit():
    circuit = relu_circuit(DELPHI_PRIME)
    bits = PrimeField(DELPHI_PRIME).bits
    # two mod-p adders (3 n), the sign test (n) and the select (n); constants fold away the rest
    assert 7 * bits <= circuit.and_gates <= 8 * bits
    garbled, _ = Garbler(circuit).garble(10)
    assert garbled.table_bytes == circuit.and_gates * 2 * 16 * 10  # half-gates: two ciphertexts per AND


def _flip_one_table_bit_in_every_relu(garbled, labels):
    # a row is read only when the wire's permute bit selects it, so flip it in all 64 ReLUs
    garbled.and_tables[5, 1, :, 0] ^= np.uint64(1 << 17)


def _random_client_label(garbled, labels):
    labels["client_share"][7, 11] = np.array([0x1234, 0x5678], dtype=np.uint64)


def _swap_relu_tables(garbled, labels):
    garbled.and_tables[:, :, [0, 1]] = garbled.and_tables[:, :, [1, 0]]


@pytest.mark.parametrize("tamper", [_flip_one_table_bit_in_every_relu, _random_client_label, _swap_relu_tables])
def test_tampering_is_detected_not_decoded(tamper):
    field = PrimeField(DELPHI_PRIME)
    _, client, server, mask = shares_with_edges(field, 64, seed=4)
    with pytest.raises(GarbledCircuitError, match="neither label"):
        garble_and_evaluate(field, client, server, mask, tamper=tamper)


def test_a_table_row_the_evaluator_never_reads_changes_nothing():
    field = PrimeField(DELPHI_PRIME)
    x, client, server, mask = shares_with_edges(field, 64, seed=5)
    circuit = relu_circuit(DELPHI_PRIME)
    garbled, keys = Garbler(circuit).garble(64)
    labels = {"client_share": keys.encode("client_share", field.to_bits(client)),
              "server_share": keys.encode("server_share", field.to_bits(server)),
              "server_mask": keys.encode("server_mask", field.to_bits(mask))}
    first_and = circuit.steps[[s.kind for s in circuit.steps].index(1)]
    a_label = labels["client_share"][0] if first_and.in_a[0] == circuit.evaluator_inputs["client_share"][0] else None
    assert a_label is not None  # the first AND gate reads the lowest client bit
    unread = (a_label[:, 0] & np.uint64(1)) == 0  # generator row is only read when a's permute bit is 1
    garbled.and_tables[0, 0, unread, 0] ^= np.uint64(1)
    out = field.from_bits(Evaluator(circuit).evaluate(garbled, labels))
    assert np.array_equal(out, (field.relu(x) + mask) % np.uint64(DELPHI_PRIME))
