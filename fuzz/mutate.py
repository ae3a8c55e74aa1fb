"""Seeded mutations of a seed file: byte edits and truncation for any file; for zip archives (TorchScript,
torch.export, torch.save) entry edits, dropped, renamed, duplicated and added entries and corrupted header
fields, with the pickle inside edited opcode by opcode; for TOML and JSON edits of the parsed document
(values of the wrong type, NaN, huge numbers, deep nesting, huge strings, missing and unknown keys), of
its text, and of its encoding (not UTF-8).

Each mutation returns the new bytes and a description of what was done, for the failure report.
"""
from __future__ import annotations

import io
import json
import math
import pickletools
import random
import struct
import tomllib
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Callable

ZIP_MAGIC = b"PK\x03\x04"
# Byte values and machine words at the edges of signed and unsigned ranges, where length and offset
# checks go wrong.
EDGE_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
EDGE_WORDS = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
EDGE_INTS = (0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, -2**63, 2**64, 10**30)
EDGE_FLOATS = (0.0, -0.0, 5e-324, 1e308, -1e308, math.nan, math.inf, -math.inf)
EDGE_STRINGS = ("", " ", "\u0000", "x" * 65536, "\u00e9\u2202\U0001f600", "../../outside", "%s%n", "\\")
NESTING_DEPTHS = (64, 1000, 100_000)
# Bytes that are not UTF-8: a lone continuation byte, a truncated sequence, an encoded surrogate, an
# overlong NUL, and bytes UTF-8 never uses.
NOT_UTF8 = (b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\xff\xfe")
# Structure-breaking characters for the text edits of TOML and JSON.
SYNTAX_CHARS = "[]{}\"'=,:.\\\n#"
PICKLE_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "INT"}
PICKLE_STR_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
# Globals a torch pickle may name instead of its own: ones the safe unpickler refuses, and real torch
# rebuild functions handed the wrong arguments.
PICKLE_GLOBALS = ("builtins\neval", "os\nsystem", "collections\nOrderedDict", "torch._utils\n_rebuild_tensor_v2",
                  "torch\nHalfStorage", "torch\nLongStorage", "torch._utils\n_rebuild_parameter")
# Entry names torch's readers look for, to add or rename into an archive.
ZIP_NAMES = ("archive/data.pkl", "archive/constants.pkl", "archive/code/__torch__.py", "archive/version",
             "archive/byteorder", "archive/data/999", "archive/extra/x", "../escape", "/absolute", "")
# Numeric header fields of zip records, as (signature, offset in the record, width in bytes).
ZIP_FIELDS = (
    (b"PK\x03\x04", 14, 4), (b"PK\x03\x04", 18, 4), (b"PK\x03\x04", 22, 4), (b"PK\x03\x04", 26, 2),
    (b"PK\x03\x04", 28, 2), (b"PK\x01\x02", 20, 4), (b"PK\x01\x02", 24, 4), (b"PK\x01\x02", 28, 2),
    (b"PK\x01\x02", 42, 4), (b"PK\x05\x06", 10, 2), (b"PK\x05\x06", 12, 4), (b"PK\x05\x06", 16, 4),
)
REPEAT_BYTES = 2**20  # a repeated value grows the document to about this size, not without bound
STACK_PROBABILITY = 0.25  # how often a second mutation is applied on top of the first
MAX_CASE_BYTES = 4 * 2**20  # stacked repeats could grow a case without bound; the seeds are far smaller


@dataclass(frozen=True)
class Raw:
    """Text written verbatim into a document: what the writers cannot produce (deep nesting, 5000 digits)."""

    text: str


def raw_values() -> tuple[Raw, ...]:
    return (*(Raw("[" * n + "]" * n) for n in NESTING_DEPTHS), Raw("9" * 5000), Raw("1e999"), Raw("-0x1"))


def mutate(data: bytes, name: str, rng: random.Random) -> tuple[bytes, str]:
    data, done = _mutate_once(data, name, rng)
    if rng.random() < STACK_PROBABILITY:
        data, more = _mutate_once(data, name, rng)
        done = f"{done}; then {more}"
    if len(data) > MAX_CASE_BYTES:
        data, done = data[:MAX_CASE_BYTES], f"{done}; cut to {MAX_CASE_BYTES} bytes"
    return data, done


def _mutate_once(data: bytes, name: str, rng: random.Random) -> tuple[bytes, str]:
    if data.startswith(ZIP_MAGIC):
        return rng.choices((mutate_zip, mutate_bytes), weights=(3, 1))[0](data, rng)
    if name.endswith(".toml"):
        return rng.choices((mutate_toml, mutate_text, mutate_encoding, mutate_bytes), weights=(5, 2, 1, 1))[0](data, rng)
    if name.endswith(".json"):
        return rng.choices((mutate_json, mutate_text, mutate_encoding, mutate_bytes), weights=(5, 2, 1, 1))[0](data, rng)
    return mutate_bytes(data, rng)


# --- bytes --------------------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    done = [_byte_edit(buf, rng) for _ in range(rng.randint(1, 4))]
    return bytes(buf), "bytes: " + ", ".join(done)


def _byte_edit(buf: bytearray, rng: random.Random) -> str:
    at = rng.randrange(len(buf) + 1)
    kind = rng.choice(("flip", "edge", "word", "insert", "delete", "duplicate", "truncate", "append"))
    if kind == "flip" and at < len(buf):
        bit = rng.randrange(8)
        buf[at] ^= 1 << bit
        return f"flip bit {bit} at {at}"
    if kind == "edge" and at < len(buf):
        buf[at] = rng.choice(EDGE_BYTES)
        return f"byte {buf[at]:#x} at {at}"
    if kind == "word" and at + 4 <= len(buf):
        word = rng.choice(EDGE_WORDS)
        buf[at:at + 4] = word.to_bytes(4, rng.choice(("little", "big")))
        return f"word {word:#x} at {at}"
    if kind == "insert":
        junk = rng.randbytes(rng.choice((1, 16, 4096)))
        buf[at:at] = junk
        return f"insert {len(junk)} random bytes at {at}"
    if kind == "delete":
        size = rng.randint(1, max(1, len(buf) // 8))
        del buf[at:at + size]
        return f"delete {size} bytes at {at}"
    if kind == "duplicate":
        size = rng.randint(1, max(1, len(buf) // 4))
        buf[at:at] = buf[at:at + size]
        return f"duplicate {size} bytes at {at}"
    if kind == "append":
        buf.extend(rng.randbytes(rng.choice((1, 64, 4096))))
        return "append random bytes"
    del buf[at:]
    return f"truncate to {at} bytes"


# --- zip archives -------------------------------------------------------------------------------------

def mutate_zip(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if rng.random() < 0.25:
        return _zip_header_field(data, rng)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error):
        return mutate_bytes(data, rng)  # an earlier mutation broke the archive: edit its bytes instead
    if not entries:
        return mutate_bytes(data, rng)
    at = rng.randrange(len(entries))
    name, content = entries[at]
    kind = rng.choice(("content", "content", "content", "drop", "duplicate", "rename", "add", "empty", "deflate"))
    compression = zipfile.ZIP_STORED
    if kind == "content":
        content, done = _mutate_entry(name, content, rng)
        entries[at] = (name, content)
        done = f"entry {name}: {done}"
    elif kind == "drop":
        del entries[at]
        done = f"drop entry {name}"
    elif kind == "duplicate":
        entries.append((name, rng.choice((content, b"", rng.randbytes(64)))))
        done = f"second entry named {name}"
    elif kind == "rename":
        new = rng.choice((*ZIP_NAMES, rng.choice(entries)[0]))
        entries[at] = (new, content)
        done = f"rename entry {name} to {new!r}"
    elif kind == "add":
        new = rng.choice(ZIP_NAMES)
        entries.append((new, rng.choice((b"", rng.randbytes(256), content))))
        done = f"add entry {new!r}"
    elif kind == "empty":
        entries[at] = (name, b"")
        done = f"empty entry {name}"
    else:
        compression = zipfile.ZIP_DEFLATED
        done = "rewrite every entry deflated"
    return _write_zip(entries, compression), done


def _write_zip(entries: list[tuple[str, bytes]], compression: int) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are the point of one mutation
        for name, content in entries:
            archive.writestr(zipfile.ZipInfo(name), content)
    return out.getvalue()


def _zip_header_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    signature, offset, width = rng.choice(ZIP_FIELDS)
    places, at = [], data.find(signature)
    while at >= 0:
        places.append(at)
        at = data.find(signature, at + 1)
    if not places:
        return mutate_bytes(data, rng)
    at = rng.choice(places) + offset
    if at + width > len(data):
        return mutate_bytes(data, rng)
    old = int.from_bytes(data[at:at + width], "little")
    new = rng.choice((0, old + 1, max(0, old - 1), 2 ** (8 * width) - 1, rng.randrange(2 ** (8 * width))))
    buf = bytearray(data)
    buf[at:at + width] = new.to_bytes(width, "little")
    return bytes(buf), f"zip field {signature!r}+{offset} at {at}: {old} -> {new}"


def _mutate_entry(name: str, content: bytes, rng: random.Random) -> tuple[bytes, str]:
    if name.endswith(".pkl") and rng.random() < 0.7:
        return mutate_pickle(content, rng)
    if name.endswith(".json") and rng.random() < 0.7:
        return mutate_json(content, rng)
    return mutate_bytes(content, rng)


def mutate_pickle(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Replace one int, string or global in a pickle: tensor shapes, strides, storage keys, dtypes."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # noqa: BLE001 - any malformed pickle: fall back to bytes
        return mutate_bytes(data, rng)
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    spots = [(op, arg, pos, end) for (op, arg, pos), end in zip(ops, ends)
             if op.name in PICKLE_INT_OPS | PICKLE_STR_OPS or op.name == "GLOBAL"]
    if not spots:
        return mutate_bytes(data, rng)
    op, arg, pos, end = rng.choice(spots)
    if op.name in PICKLE_INT_OPS:
        value = rng.choice((*EDGE_INTS, arg * 1000, arg + 1, arg - 1, -arg))
        size = (value.bit_length() + 8) // 8
        code = b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)  # LONG1
    elif op.name == "GLOBAL":
        value = rng.choice(PICKLE_GLOBALS)
        code = b"c" + value.encode() + b"\n"
    else:
        strings = [a for o, a, _ in ops if o.name in PICKLE_STR_OPS and isinstance(a, str)]
        value = rng.choice((*EDGE_STRINGS, *strings))
        encoded = value.encode("utf-8", "surrogatepass")
        code = b"X" + struct.pack("<I", len(encoded)) + encoded  # BINUNICODE
    return data[:pos] + code + data[end:], f"pickle {op.name} at {pos}: {arg!r:.40} -> {value!r:.40}"


# --- documents: TOML and JSON -------------------------------------------------------------------------

def mutate_toml(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    try:
        document = tomllib.loads(data.decode())
    except (ValueError, RecursionError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return mutate_text(data, rng)
    done = mutate_tree(document, rng, (*EDGE_INTS, *EDGE_FLOATS, *EDGE_STRINGS, True, *raw_values()))
    return dump_toml(document).encode("utf-8", "surrogatepass"), done


def mutate_json(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return mutate_text(data, rng)
    done = mutate_tree(document, rng, (*EDGE_INTS, *EDGE_FLOATS, *EDGE_STRINGS, True, None, *raw_values()))
    return dump_json(document).encode("utf-8", "surrogatepass"), done  # "\\ud800" parses to a lone surrogate


def mutate_tree(document: Any, rng: random.Random, values: tuple) -> str:
    """Edit a parsed document in place at one randomly chosen place; return what was done."""
    places = list(_places(document, ()))
    if not places:
        return "nothing to edit"
    parent, key, path = rng.choice(places)
    value = parent[key]
    kind = rng.choice(("replace", "replace", "replace", "delete", "retype", "repeat", "add", "swap"))
    where = "/".join(map(str, path))
    if kind == "replace":
        parent[key] = rng.choice(values)
        return f"{where} = {_short(parent[key])}"
    if kind == "delete":
        del parent[key]
        return f"delete {where}"
    if kind == "retype":
        parent[key] = rng.choice((str(value), [value], {"value": value}, len(str(value))))
        return f"{where} retyped to {type(parent[key]).__name__}"
    if kind == "repeat":
        times = min(rng.choice((2, 100, 10_000)), max(2, REPEAT_BYTES // len(repr(value))))
        parent[key] = [value] * times if not isinstance(value, list) else value * times
        return f"{where} repeated {times} times"
    if kind == "add":
        target = value if isinstance(value, dict) else parent if isinstance(parent, dict) else None
        if target is None:
            parent[key] = {"unexpected": value}
            return f"{where} wrapped in a table"
        target[rng.choice(("unexpected", "", "value", "schema", "__proto__"))] = rng.choice(values)
        return f"unknown key added at {where}"
    other_parent, other_key, other_path = rng.choice(places)
    if other_path[:len(path)] == path or path[:len(other_path)] == other_path:
        return f"swap {where} with a place inside it (no effect)"  # would make the document contain itself
    parent[key], other_parent[other_key] = other_parent[other_key], value
    return f"swap {where} with {'/'.join(map(str, other_path))}"


def _places(node: Any, path: tuple) -> Any:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        yield node, key, (*path, key)
        yield from _places(value, (*path, key))


def _short(value: Any) -> str:
    text = value.text if isinstance(value, Raw) else repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} chars)"


def _with_raw(document: Any, render: Callable[[Any], str]) -> str:
    """Render a document whose Raw values are first swapped for placeholders, then written verbatim."""
    raws: list[Raw] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(node)
            return f"@raw{len(raws) - 1}@"
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = render(swap(document))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@raw{i}@"', raw.text)
    return text


def dump_json(document: Any) -> str:
    return _with_raw(document, lambda doc: json.dumps(doc, indent=1, ensure_ascii=False))


def dump_toml(document: dict) -> str:
    return _with_raw(document, _toml_text)


def _toml_text(document: dict) -> str:
    """TOML for what tomllib parses, plus None (left out: TOML has no null) and values of any type."""
    def table(node: dict, prefix: list[str], lines: list[str]) -> None:
        values = {k: v for k, v in node.items() if not isinstance(v, dict) and v is not None}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix and (values or not tables):
            lines.append(f"[{'.'.join(map(key, prefix))}]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in values.items())
        for k, v in tables.items():
            table(v, [*prefix, k], lines)

    def key(name: Any) -> str:
        return json.dumps(str(name), ensure_ascii=False)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
        return json.dumps(str(v), ensure_ascii=False)  # JSON's string escapes are TOML's basic-string escapes

    lines: list[str] = []
    table(document, [], lines)
    return "\n".join(lines) + "\n"


def mutate_text(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Line and character edits of a text file that keep it UTF-8."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    kind = rng.choice(("drop-line", "double-line", "swap-lines", "syntax", "cut"))
    if kind == "drop-line":
        del lines[at]
    elif kind == "double-line":
        lines.insert(at, lines[at])
    elif kind == "swap-lines":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif kind == "syntax":
        column = rng.randrange(len(lines[at]) + 1)
        lines[at] = lines[at][:column] + rng.choice(SYNTAX_CHARS) * rng.choice((1, 1, 3)) + lines[at][column:]
    else:
        lines[at] = lines[at][:rng.randrange(len(lines[at]) + 1)]
        del lines[at + 1:]
    return "\n".join(lines).encode(), f"text: {kind} at line {at + 1}"


def mutate_encoding(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(("not-utf8", "not-utf8", "bom", "utf16", "nul"))
    at = rng.randrange(len(data) + 1)
    if kind == "not-utf8":
        junk = rng.choice(NOT_UTF8)
        return data[:at] + junk + data[at:], f"encoding: {junk!r} at {at}"
    if kind == "bom":
        return b"\xef\xbb\xbf" + data, "encoding: UTF-8 byte-order mark"
    if kind == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16"), "encoding: UTF-16"
    return data[:at] + b"\x00" + data[at:], f"encoding: NUL at {at}"
