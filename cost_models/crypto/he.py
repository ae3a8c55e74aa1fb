"""BFV through SEAL (TenSEAL's `sealapi` bindings) and a Gazelle-packed convolution as Delphi runs it.

TenSEAL rather than seal-python: it installs as a wheel (seal-python builds SEAL from source),
and its `sealapi` module is a thin binding of SEAL's own classes, so Galois keys, row and
column rotations and plaintext multiplies are SEAL's calls, not a higher-level tensor API.

The convolution follows Delphi's port of Gazelle (papers.md 2.2b): channels packed cph per
half-ciphertext, the client uploads its input pre-rotated once per filter tap, and the server
does cph*f^2 plaintext multiplies and rotations by whole channel blocks per input ciphertext and
pair of output halves. Operation counts are those of Delphi's `conv_metadata`, so a cost model
that counts like Delphi prices exactly what runs here.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import tenseal.sealapi as seal

from cost_models.crypto.clock import cpu_seconds
from cost_models.he_packing import naf_weight, next_pow2

POLY_DEGREE = 8192  # Delphi's POLY_MOD_DEGREE (papers.md 2.1)


class Bfv:
    """One keyed BFV instance: SEAL's default 128-bit coefficient modulus and default Galois keys.

    Default Galois keys (steps +-2^k and the column swap) are what Delphi creates, so a rotation
    by any other step is several key switches, as in the measured Delphi runs.
    """

    def __init__(self, plain_modulus: int, poly_degree: int = POLY_DEGREE) -> None:
        if (plain_modulus - 1) % (2 * poly_degree):
            raise ValueError(f"plain modulus {plain_modulus} is not 1 mod {2 * poly_degree}: SEAL cannot batch with it")
        self.plain_modulus = plain_modulus
        self.poly_degree = poly_degree
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
        parms.set_poly_modulus_degree(poly_degree)
        parms.set_coeff_modulus(seal.CoeffModulus.BFVDefault(poly_degree, seal.SEC_LEVEL_TYPE.TC128))
        parms.set_plain_modulus(seal.Modulus(plain_modulus))
        self.context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        if self.context.parameters_error_message() != "valid":
            raise ValueError(f"SEAL rejects BFV parameters: {self.context.parameters_error_message()}")
        keygen = seal.KeyGenerator(self.context)
        public_key = seal.PublicKey()
        keygen.create_public_key(public_key)
        self.galois_keys = seal.GaloisKeys()
        keygen.create_galois_keys(self.galois_keys)
        self.encoder = seal.BatchEncoder(self.context)
        self.encryptor = seal.Encryptor(self.context, public_key)
        self.decryptor = seal.Decryptor(self.context, keygen.secret_key())
        self.evaluator = seal.Evaluator(self.context)
        self._scratch = tempfile.TemporaryDirectory(prefix="pisim-bfv-")

    @property
    def slots(self) -> int:
        return self.poly_degree

    def encode(self, values: np.ndarray) -> seal.Plaintext:
        plain = seal.Plaintext()
        self.encoder.encode((values.astype(np.int64) % self.plain_modulus).astype(np.uint64).tolist(), plain)
        return plain

    def encrypt(self, values: np.ndarray) -> seal.Ciphertext:
        ct = seal.Ciphertext()
        self.encryptor.encrypt(self.encode(values), ct)
        return ct

    def decrypt(self, ct: seal.Ciphertext) -> np.ndarray:
        plain = seal.Plaintext()
        self.decryptor.decrypt(ct, plain)
        return np.array(self.encoder.decode_uint64(plain), dtype=np.uint64)

    def noise_budget(self, ct: seal.Ciphertext) -> int:
        return self.decryptor.invariant_noise_budget(ct)

    def serialize(self, obj) -> bytes:
        """SEAL's own serialization (its default compression); SEAL's bindings here only write files."""
        path = os.path.join(self._scratch.name, "object")
        obj.save(path)
        with open(path, "rb") as f:
            return f.read()

    def deserialize_ciphertext(self, data: bytes) -> seal.Ciphertext:
        path = os.path.join(self._scratch.name, "incoming")
        with open(path, "wb") as f:
            f.write(data)
        ct = seal.Ciphertext()
        ct.load(self.context, path)
        return ct


@dataclass(frozen=True)
class ConvShape:
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int
    stride: int = 1

    @property
    def padding(self) -> int:
        return self.kernel // 2


@dataclass(frozen=True)
class ConvPlan:
    """Delphi's packing arithmetic for one conv (conv_metadata in conv2d.cpp), at the input's resolution."""

    shape: ConvShape
    slots: int = POLY_DEGREE

    @property
    def image_slots(self) -> int:
        return next_pow2(self.shape.height * self.shape.width)

    @property
    def channels_per_half(self) -> int:
        return (self.slots // 2) // self.image_slots

    @property
    def input_ciphertexts(self) -> int:
        return math.ceil(self.shape.in_channels / (2 * self.channels_per_half))

    @property
    def half_perms(self) -> int:
        halves = math.ceil(self.shape.out_channels / self.channels_per_half)
        return halves + 1 if halves > 1 and halves % 2 else halves

    @property
    def output_ciphertexts(self) -> int:
        return max(1, self.half_perms // 2)

    @property
    def uploaded_ciphertexts(self) -> int:
        return self.input_ciphertexts * self.shape.kernel ** 2

    @property
    def multiplies(self) -> int:
        return self.half_perms * self.input_ciphertexts * self.channels_per_half * self.shape.kernel ** 2

    @property
    def input_spans_both_halves(self) -> bool:
        return self.shape.in_channels > self.channels_per_half

    @property
    def rotations(self) -> int:
        cph, inp = self.channels_per_half, self.input_ciphertexts
        if self.half_perms == 1:
            return inp * (cph - 1) + (inp if self.input_spans_both_halves else 0)
        return (self.half_perms // 2) * inp * (2 * cph - 1)


@dataclass
class HeConvRun:
    """One conv through HE: the decrypted output, the operations done, bytes and seconds by party and step."""

    output: np.ndarray  # [out_channels, out_h, out_w] mod t
    plan: ConvPlan
    operations: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # "client_encrypt", "server_eval", ...
    bytes_sent: dict[str, int] = field(default_factory=dict)  # "client", "server"


class _Counting:
    """The BFV evaluator calls the conv makes, counted and timed as they run."""

    def __init__(self, bfv: Bfv, run: HeConvRun) -> None:
        self.bfv, self.run = bfv, run
        self.operations = defaultdict(int)

    def multiply_plain(self, ct, plain) -> seal.Ciphertext:
        out = seal.Ciphertext()
        self.bfv.evaluator.multiply_plain(ct, plain, out)
        self.operations["multiply_plain"] += 1
        return out

    def accumulate(self, acc, ct):
        """acc + ct, where None stands for a sum with no terms yet."""
        if acc is None or ct is None:
            return ct if acc is None else acc
        self.bfv.evaluator.add_inplace(acc, ct)
        self.operations["add"] += 1
        return acc

    def rotate_rows(self, ct, steps: int) -> seal.Ciphertext:
        out = seal.Ciphertext()
        self.bfv.evaluator.rotate_rows(ct, steps, self.bfv.galois_keys, out)
        self.operations["rotate_rows"] += 1
        self.operations["key_switches"] += rotation_key_switches(steps, self.bfv.slots // 2)
        return out

    def rotate_columns(self, ct) -> seal.Ciphertext:
        out = seal.Ciphertext()
        self.bfv.evaluator.rotate_columns(ct, self.bfv.galois_keys, out)
        self.operations["rotate_columns"] += 1
        self.operations["key_switches"] += 1
        return out


def rotation_key_switches(steps: int, row_size: int) -> int:
    """Key switches SEAL spends on rotate_rows(steps) with only power-of-two keys: the NAF weight of the step.

    SEAL reduces the step to (-row_size/2, row_size/2] and applies one key per nonzero NAF digit.
    """
    step = steps % row_size
    if step > row_size // 2:
        step -= row_size
    return naf_weight(step)


def _tap_offsets(shape: ConvShape) -> list[tuple[int, int]]:
    pad = shape.padding
    return [(dy - pad, dx - pad) for dy in range(shape.kernel) for dx in range(shape.kernel)]


def _valid_positions(shape: ConvShape, image_slots: int, dy: int, dx: int) -> np.ndarray:
    """[image_slots] bool: output positions whose tap (dy, dx) reads inside the image (not padding or wrap)."""
    y, x = np.divmod(np.arange(image_slots), shape.width)
    inside = np.arange(image_slots) < shape.height * shape.width
    return inside & (y + dy >= 0) & (y + dy < shape.height) & (x + dx >= 0) & (x + dx < shape.width)


class GazelleConv:
    """Server-side weights of one conv, laid out for the packed input and rotated output blocks."""

    def __init__(self, bfv: Bfv, weight: np.ndarray, shape: ConvShape) -> None:
        self.bfv, self.weight, self.shape = bfv, weight.astype(np.int64), shape
        self.plan = ConvPlan(shape, bfv.slots)

    # --- client side: packing, pre-rotation per tap, encryption ------------------------------------------
    def pack_input(self, image: np.ndarray) -> np.ndarray:
        """[Ci, H, W] -> [input ciphertexts, slots]: channel c at row (c // cph) % 2, block c % cph."""
        plan, s = self.plan, self.shape
        packed = np.zeros((plan.input_ciphertexts * 2 * plan.channels_per_half, plan.image_slots), dtype=np.int64)
        packed[: s.in_channels, : s.height * s.width] = image.reshape(s.in_channels, -1)
        return packed.reshape(plan.input_ciphertexts, self.bfv.slots)

    def rotated_inputs(self, packed: np.ndarray) -> list[list[np.ndarray]]:
        """For each input ciphertext, one plaintext vector per tap: each row rotated left by the tap's offset."""
        half = self.bfv.slots // 2
        rows = packed.reshape(packed.shape[0], 2, half)
        return [[np.roll(rows[j], -(dy * self.shape.width + dx), axis=1).reshape(-1)
                 for dy, dx in _tap_offsets(self.shape)] for j in range(packed.shape[0])]

    # --- server side ------------------------------------------------------------------------------------
    def weight_vector(self, out_ct: int, in_ct: int, swap: int, shift: int, tap: int) -> np.ndarray:
        """Plaintext multiplying tap `tap` of input ciphertext `in_ct` on diagonal (swap, shift).

        After the product is rotated left by `shift` blocks (and rows swapped when `swap`), the
        input channel at (row r, block b) lands on output block (r xor swap, b - shift).
        """
        plan, s = self.plan, self.shape
        cph, image = plan.channels_per_half, plan.image_slots
        dy, dx = _tap_offsets(s)[tap]
        rows = np.arange(2)[:, None]
        blocks = np.arange(cph)[None, :]
        in_channel = in_ct * 2 * cph + rows * cph + blocks
        out_block = (blocks - shift) % cph
        if plan.half_perms == 1:
            out_channel = np.broadcast_to(out_block, (2, cph))
        else:
            out_channel = out_ct * 2 * cph + (rows ^ swap) * cph + out_block
        used = (in_channel < s.in_channels) & (out_channel < s.out_channels)
        taps = np.zeros((2, cph), dtype=np.int64)
        taps[used] = self.weight[out_channel[used], in_channel[used], dy + s.padding, dx + s.padding]
        valid = _valid_positions(s, image, dy, dx)
        return (taps[:, :, None] * valid[None, None, :]).reshape(-1)

    def evaluate(self, inputs: list[list[seal.Ciphertext]], ops: _Counting, encode_seconds: list[float]) -> list:
        plan = self.plan
        cph, image = plan.channels_per_half, plan.image_slots
        taps = len(_tap_offsets(self.shape))
        swaps = (0,) if plan.half_perms == 1 else (0, 1)
        outputs = []
        for q in range(plan.output_ciphertexts):
            total = None
            for j, tap_cts in enumerate(inputs):
                by_swap = {}
                for swap in swaps:
                    acc = None
                    for shift in range(cph):
                        diagonal = None
                        for tap in range(taps):
                            start = cpu_seconds()  # weight layout and encoding: Delphi does it before its timed span
                            vector = self.weight_vector(q, j, swap, shift, tap)
                            plain = self.bfv.encode(vector) if vector.any() else None
                            encode_seconds[0] += cpu_seconds() - start
                            if plain is None:  # padding channels: SEAL refuses a product that is all zero
                                ops.operations["skipped_zero_multiplies"] += 1
                                continue
                            diagonal = ops.accumulate(diagonal, ops.multiply_plain(tap_cts[tap], plain))
                        if shift and diagonal is not None:
                            diagonal = ops.rotate_rows(diagonal, shift * image)
                        acc = ops.accumulate(acc, diagonal)
                    by_swap[swap] = acc
                contribution = by_swap[0]
                if plan.half_perms > 1 and by_swap[1] is not None:
                    contribution = ops.accumulate(contribution, ops.rotate_columns(by_swap[1]))
                elif plan.half_perms == 1 and plan.input_spans_both_halves and contribution is not None:
                    contribution = ops.accumulate(contribution, ops.rotate_columns(contribution))
                total = ops.accumulate(total, contribution)
            outputs.append(total)
        return outputs

    def unpack_output(self, vectors: list[np.ndarray]) -> np.ndarray:
        """Output vectors -> [Co, out_h, out_w], keeping the strided positions of the full-resolution result."""
        plan, s = self.plan, self.shape
        blocks = np.stack(vectors).reshape(-1, plan.image_slots)
        if plan.half_perms == 1:
            blocks = blocks[: plan.channels_per_half]
        full = blocks[: s.out_channels, : s.height * s.width].reshape(s.out_channels, s.height, s.width)
        return full[:, :: s.stride, :: s.stride]


def he_convolution(bfv: Bfv, image: np.ndarray, weight: np.ndarray, stride: int = 1,
                   rng: np.random.Generator | None = None) -> HeConvRun:
    """Run one conv layer end to end: client encrypts, server computes and masks, client decrypts.

    `image` [Ci, H, W] and `weight` [Co, Ci, f, f] are integers (taken mod t); the result is the
    conv mod t. Ciphertexts cross as serialized bytes; the server subtracts a random mask as in
    Delphi's preprocessing and the client adds it back only to check the result.
    """
    rng = rng or np.random.default_rng()
    shape = ConvShape(image.shape[0], weight.shape[0], image.shape[1], image.shape[2], weight.shape[2], stride)
    conv = GazelleConv(bfv, weight, shape)
    run = HeConvRun(output=np.empty(0), plan=conv.plan)
    ops = _Counting(bfv, run)
    clock = cpu_seconds

    start = clock()
    upload = [[bfv.serialize(bfv.encrypt(v)) for v in taps] for taps in conv.rotated_inputs(conv.pack_input(image))]
    run.seconds["client_encrypt"] = clock() - start
    run.bytes_sent["client"] = sum(len(b) for taps in upload for b in taps)

    encode_seconds = [0.0]
    mask = rng.integers(0, bfv.plain_modulus, (conv.plan.output_ciphertexts, bfv.slots), dtype=np.uint64)
    start = clock()
    received = [[bfv.deserialize_ciphertext(b) for b in taps] for taps in upload]
    results = conv.evaluate(received, ops, encode_seconds)
    for ct, m in zip(results, mask):
        encoded = clock()
        plain = bfv.encode(m)
        encode_seconds[0] += clock() - encoded
        bfv.evaluator.sub_plain_inplace(ct, plain)
    download = [bfv.serialize(ct) for ct in results]
    run.seconds["server_eval"] = clock() - start - encode_seconds[0]
    run.seconds["server_encode"] = encode_seconds[0]
    run.bytes_sent["server"] = sum(len(b) for b in download)

    start = clock()
    vectors = [bfv.decrypt(bfv.deserialize_ciphertext(b)) for b in download]
    run.seconds["client_decrypt"] = clock() - start
    t = np.uint64(bfv.plain_modulus)
    unmasked = [(v + m) % t for v, m in zip(vectors, mask)]
    run.output = conv.unpack_output(unmasked)
    run.operations = dict(ops.operations)
    return run
