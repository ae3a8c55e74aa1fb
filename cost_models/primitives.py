"""Primitive costs: what one cryptographic building block costs a party, from a profile and protocol data.

Each function returns a `Cost` in one phase. Parties are named "client" and "server"; the
protocol data says which party plays which role (garbler, OT sender, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

from cost_models.cost import Cost, in_phase, stored
from cost_models.he_packing import HeLinearCounts
from cost_models.profiles import HardwareProfile


@dataclass(frozen=True)
class Parties:
    """The two machines and the protocol's constants, as plain floats for fast arithmetic."""

    client: HardwareProfile
    server: HardwareProfile
    protocol: dict[str, float]

    def profile(self, party: str) -> HardwareProfile:
        return self.client if party == "client" else self.server


def other(party: str) -> str:
    return "server" if party == "client" else "client"


def compute(phase: str, party: str, seconds: float) -> Cost:
    return in_phase(phase, **{f"{party}_s": seconds})


def send(phase: str, sender: str, size_bytes: float, rounds: float = 0.5) -> Cost:
    """One message on the critical path: half a round trip."""
    direction = "up_bytes" if sender == "client" else "down_bytes"
    return in_phase(phase, **{direction: size_bytes, "rounds": rounds})


def garble(phase: str, garbler: str, and_gates: float, p: Parties) -> Cost:
    """Garble and ship the circuits: time at the garbler, material to the evaluator."""
    seconds = and_gates * p.profile(garbler)["gc_garble_per_and"]
    return compute(phase, garbler, seconds) + send(phase, garbler, and_gates * p.protocol["gc_bytes_per_and"])


def evaluate(phase: str, evaluator: str, and_gates: float, p: Parties) -> Cost:
    return compute(phase, evaluator, and_gates * p.profile(evaluator)["gc_eval_per_and"])


def encode_labels(phase: str, garbler: str, labels: float, p: Parties) -> Cost:
    return compute(phase, garbler, labels * p.profile(garbler)["gc_encode_per_label"])


def send_labels(phase: str, garbler: str, labels: float, p: Parties) -> Cost:
    return send(phase, garbler, labels * p.protocol["wire_label_bytes"])


def oblivious_transfers(phase: str, sender: str, transfers: float, p: Parties) -> Cost:
    """OT extension: the receiver's correction column up, the sender's two masked messages back: one round trip.
    Each side also computes (PRG expansion, bit transposition, hashing), at its own machine's speed."""
    receiver = other(sender)
    return (compute(phase, sender, transfers * p.profile(sender)["ot_sender_per_transfer"])
            + compute(phase, receiver, transfers * p.profile(receiver)["ot_receiver_per_transfer"])
            + send(phase, receiver, transfers * p.protocol["ot_receiver_bytes_per_transfer"])
            + send(phase, sender, transfers * p.protocol["ot_sender_bytes_per_transfer"]))


def he_evaluate(phase: str, counts: HeLinearCounts, p: Parties) -> Cost:
    """Server side of a packed HE linear layer: multiplies, key switches, and (de)serialising ciphertexts."""
    s = p.server
    seconds = (counts.multiplies * s["he_ct_pt_multiply"] + counts.key_switches * s["he_key_switch"]
               + (counts.uploads + counts.downloads) * s["he_ciphertext_io"])
    return compute(phase, "server", seconds)


def he_client_round_trip(phase: str, counts: HeLinearCounts, p: Parties,
                         sizes: tuple[float, float] | None = None) -> Cost:
    """The client encrypts what it uploads and decrypts what comes back; one round trip of ciphertexts.
    `sizes`: bytes of an uploaded and of a returned ciphertext where they differ (the server returns its
    results modulus-switched down); by default both are the protocol's `he_ciphertext_bytes`."""
    c = p.client
    up_bytes, down_bytes = sizes or (p.protocol["he_ciphertext_bytes"],) * 2
    seconds = counts.uploads * c["he_encrypt"] + counts.downloads * c["he_decrypt"]
    return (compute(phase, "client", seconds) + send(phase, "client", counts.uploads * up_bytes)
            + send(phase, "server", counts.downloads * down_bytes))


def ot_subprotocol(phase: str, size_bytes: float, rounds: float, extension: str, p: Parties) -> Cost:
    """An OT-based two-party sub-protocol (millionaire, multiplexer, truncation) on a batch of elements.

    Both parties send and receive in turn; half the traffic is taken to go each way (assumption). Each
    party's compute is priced in proportion to the traffic, at its own machine's `{extension}_ot_per_byte`:
    the OT correlations a protocol consumes, whose generation dominates its compute, grow with the bits
    it moves (the Cheetah paper's Table 6 shows about the same seconds per byte for all three
    sub-protocols, reference 4.4)."""
    key = f"{extension}_ot_per_byte"
    return (compute(phase, "client", size_bytes * p.client[key]) + compute(phase, "server", size_bytes * p.server[key])
            + send(phase, "client", size_bytes / 2, rounds / 2) + send(phase, "server", size_bytes / 2, rounds / 2))


def share_macs(phase: str, party: str, macs: float, p: Parties) -> Cost:
    return compute(phase, party, macs * p.profile(party)["share_mac"])


def hold(client_bytes: float = 0.0, server_bytes: float = 0.0) -> Cost:
    return stored(client_bytes, server_bytes)
