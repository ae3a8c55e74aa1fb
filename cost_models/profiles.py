"""Hardware profiles: what one machine pays per cryptographic primitive, each value with its source.

Schema `pisim.profile/1` (documented in docs/architecture.md; `pisim calibrate` writes it):

    schema = "pisim.profile/1"
    name = "delphi-epyc7502"
    description = "..."
    [constants.he_key_switch]
    value = 3.79e-3
    unit = "s"
    source = "..."      # paper/table, code file, or calibration run
    repeats = 10        # optional, calibrated values
    spread = 1.2e-4     # optional, same unit as value
"""
from __future__ import annotations

from pathlib import Path

from cost_models.constants import ConstantFile, ConstantSpec

PROFILE_SCHEMA = "pisim.profile/1"

PROFILE_CONSTANTS: dict[str, ConstantSpec] = {
    "gc_garble_per_and": ConstantSpec("s"),     # garble one AND gate (free-XOR: XORs are free)
    "gc_eval_per_and": ConstantSpec("s"),       # evaluate one AND gate
    "gc_encode_per_label": ConstantSpec("s"),   # encode one input wire into its label
    "he_ct_pt_multiply": ConstantSpec("s"),     # BFV ciphertext x plaintext multiply (and the add that follows)
    "he_key_switch": ConstantSpec("s"),         # one key switch: a rotation by a power of two, or relinearisation
    "he_ciphertext_io": ConstantSpec("s"),      # (de)serialise one ciphertext
    "he_encrypt": ConstantSpec("s"),            # encode and encrypt one ciphertext
    "he_decrypt": ConstantSpec("s"),            # decrypt and decode one ciphertext
    "he_keygen": ConstantSpec("s"),             # secret, public, relinearisation and Galois keys, once
    "share_mac": ConstantSpec("s"),             # one multiply-accumulate on additive shares in the field
    "ot_sender_per_transfer": ConstantSpec("s"),    # OT extension, sender side, per transfer (base OTs amortised)
    "ot_receiver_per_transfer": ConstantSpec("s"),  # OT extension, receiver side, per transfer (base OTs amortised)
}

# Primitives only some protocols run; a profile may leave them out, and a setting whose protocol needs one
# the profile lacks is refused when it is loaded (`Handler.profile_constants`). Cheetah's and SCI_HE's
# (papers.md 4.4): coefficient-encoded BFV at N = 4096 and the OT-based non-linear sub-protocols.
OPTIONAL_PROFILE_CONSTANTS: dict[str, ConstantSpec] = {
    "coeff_he_encrypt": ConstantSpec("s"),          # encrypt and serialise one N = 4096 input ciphertext (client)
    "coeff_he_ct_pt_multiply": ConstantSpec("s"),   # one N = 4096 ciphertext x plaintext polynomial product (server)
    "coeff_he_return": ConstantSpec("s"),   # one returned ciphertext: mask, modulus switch, truncate, serialise
    "silent_ot_per_byte": ConstantSpec("s"),  # this party's compute per byte of a Ferret (VOLE) silent-OT protocol
    "iknp_ot_per_byte": ConstantSpec("s"),    # this party's compute per byte of an IKNP OT-extension protocol
}


class HardwareProfile(ConstantFile):
    """One machine's price per cryptographic primitive."""


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    return HardwareProfile.read("profiles", name_or_path, PROFILE_SCHEMA, PROFILE_CONSTANTS,
                                OPTIONAL_PROFILE_CONSTANTS)
