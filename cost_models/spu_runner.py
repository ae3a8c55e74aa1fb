"""Execute single layers under secretflow SPU's Cheetah protocol and print what each cost, as JSON.

This file runs in the SPU environment (`make spu-env`: python3.11 with spu 0.9.5, its own numpy and jax),
never in PISim's: it imports nothing from PISim, and PISim starts it as a subprocess
(cost_models/spu.py) with a JSON request on stdin. It prints one JSON document on stdout, on a line of its own: the last line that
starts with "{" (SPU's C++ logger may write to stdout too).

Two parties run as two threads of this process, talking over SPU's TCP link (brpc) on this machine
through a small proxy process (which can delay every message to count the flights; see
_with_flights). SPU's in-memory link is not used: on this shared two-core machine a 262,144-element
ReLU layer took about twice as long over it (10 s) as over TCP (5 s).
The inputs are random: the activation is secret-shared between the parties; so are a linear layer's
weights (dealt by party 1, the server), since SPU's Cheetah takes no private inputs: SPU then
multiplies two shared operands, where Cheetah proper has the server's weights in the clear.
Both parties' runtimes are built once and run every layer in turn, each `repeats` times after one
warm-up run: the first warm-up of a kind of layer pays Cheetah's one-time setup (base OTs and the
silent-OT state, HE keys), which the paper's timings and PISim's per-inference costs exclude; warm-up
runs are reported apart. Wall seconds are the slower party's `Runtime.run` (SPU works on threads of
its own, so a party thread's CPU time says little).

SPU reports what a run sent only in its profiling log ("Link details", and per MPC kernel); the
runner points the process's stdout and stderr at a file while SPU runs and reads those lines back.
Party 0's runtime profiles: its "send" figures are what party 0 sent and its "recv" figures what
party 1 sent.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

RELU, TRUNCATION, LINEAR, CONV2D = "relu", "truncation", "linear", "conv2d"
KINDS = (RELU, TRUNCATION, LINEAR, CONV2D)
FIELDS = {32: "FM32", 64: "FM64", 128: "FM128"}
# SPU's own fixed-point fraction bits per ring when a config leaves them 0 (libspu/core/config.cc)
DEFAULT_FRACTION_BITS = {32: 8, 64: 18, 128: 26}
LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), send actions (\d+), recv actions (\d+)")
KERNEL = re.compile(r"- (\S+), executed (\d+) times, duration ([0-9.e+-]+)s, send bytes (\d+) recv bytes (\d+), "
                    r"send actions (\d+), recv actions (\d+)")
SECTION = re.compile(r"(\w+) profiling: total time")


def parse_profile(log: str) -> dict:
    """One run's profiling log (party 0's runtime) -> bytes and messages per party and per MPC kernel."""
    link = LINK.findall(log)
    if not link:
        raise RuntimeError("SPU printed no 'Link details' line: was enable_pphlo_profile set?")
    sent0, sent1, messages0, messages1 = (int(v) for v in link[-1])
    kernels, section = {}, None
    for line in log.splitlines():
        heading = SECTION.search(line)
        if heading:
            section = heading.group(1)
            continue
        kernel = KERNEL.search(line)
        if kernel and section == "MPC":
            name, calls, seconds, k_sent0, k_sent1, k_msg0, k_msg1 = kernel.groups()
            kernels[name] = {"calls": int(calls), "seconds": float(seconds),
                             "bytes_sent": [int(k_sent0), int(k_sent1)], "messages_sent": [int(k_msg0), int(k_msg1)]}
    return {"bytes_sent": [sent0, sent1], "messages_sent": [messages0, messages1], "kernels": kernels}


def _program(layer: dict, rng: np.random.Generator):
    """The layer as a jax function, its secret input and (for linear layers) party 1's private weights."""
    import jax
    import jax.numpy as jnp

    kind = layer["kind"]
    if kind == RELU:
        return (lambda x: jnp.maximum(x, 0)), [rng.standard_normal(layer["elements"])], []
    if kind == TRUNCATION:
        # a secret times a public fixed-point constant: the product is local, the truncation is not
        return (lambda x: x * 0.5), [rng.standard_normal(layer["elements"])], []
    if kind == LINEAR:
        x = rng.standard_normal((layer.get("batch", 1), layer["in_features"]))
        w = rng.standard_normal((layer["in_features"], layer["out_features"])) / np.sqrt(layer["in_features"])
        return (lambda x, w: x @ w), [x], [w]
    if kind == CONV2D:
        k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", layer["kernel"] // 2)
        x = rng.standard_normal((1, layer["in_channels"], layer["height"], layer["width"]))
        w = rng.standard_normal((layer["out_channels"], layer["in_channels"], k, k)) / np.sqrt(layer["in_channels"] * k * k)

        def conv(x, w):
            return jax.lax.conv_general_dilated(x, w, (s, s), [(p, p), (p, p)],
                                                dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return conv, [x], [w]
    raise ValueError(f"unknown layer kind {kind!r}; expected one of {KINDS}")


def _reference(fn, secret, private) -> np.ndarray:
    return np.asarray(fn(*[a.astype(np.float32) for a in (*secret, *private)]))


class _Capture:
    """Points file descriptors 1 and 2 at a file (SPU's C++ logger writes there) and reads what was added."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.saved = [os.dup(1), os.dup(2)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        self.offset = 0

    def new_text(self) -> str:
        self.file.seek(self.offset)
        data = self.file.read()
        self.offset += len(data)
        self.file.seek(0, os.SEEK_END)
        return data.decode("utf-8", "replace")

    def restore(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def _compile(layer: dict, spu: dict, rng: np.random.Generator) -> dict:
    libspu, spu_api, spu_fe = spu["libspu"], spu["api"], spu["frontend"]
    fn, secret, private = _program(layer, rng)
    args = [a.astype(np.float32) for a in (*secret, *private)]
    names = [f"in{i}" for i in range(len(args))]
    executable, _ = spu_fe.compile(spu_fe.Kind.JAX, fn, args, {}, names, [libspu.Visibility.VIS_SECRET] * len(args),
                                   lambda outs: [f"out{i}" for i in range(len(outs))])
    io = spu_api.Io(2, spu["config"])
    # SPU's Cheetah io has no private values (cheetah/io.cc refuses VIS_PRIVATE): the weights are secret
    # shares too, dealt with owner_rank 1 (the server), so SPU multiplies two shared operands (mmul_aa)
    shares = [io.make_shares(a, libspu.Visibility.VIS_SECRET) for a in secret]
    shares += [io.make_shares(a, libspu.Visibility.VIS_SECRET, owner_rank=1) for a in private]
    return {"layer": layer, "executable": executable, "names": names, "shares": shares, "io": io,
            "expected": _reference(fn, secret, private)}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class _DelayedTcpLink:
    """SPU's TCP (brpc) link between the two parties, every byte passing through a proxy process that
    delivers it `delay_s` after it was sent (order kept): each sequential flight then costs `delay_s` more."""

    def __init__(self, libspu, delay_s: float) -> None:
        self.libspu = libspu
        own, proxied = _free_ports(2), _free_ports(2)
        self.hosts = {rank: (own[rank], proxied[rank]) for rank in range(2)}
        routes = [f"{proxied[rank]}:{own[rank]}" for rank in range(2)]
        self.proxy = subprocess.Popen([sys.executable, "-I", __file__, "--proxy", str(delay_s), *routes],
                                      stdout=subprocess.PIPE, text=True)
        if self.proxy.stdout.readline().strip() != "ready":
            raise RuntimeError("the delaying proxy did not start")

    def __call__(self, rank: int):
        desc = self.libspu.link.Desc()
        desc.throttle_window_size = 0  # no wait for acknowledgements: only the protocol's own flights wait
        desc.recv_timeout_ms = 3_600_000
        for peer in range(2):
            own, proxied = self.hosts[peer]
            desc.add_party(f"party{peer}", f"127.0.0.1:{own if peer == rank else proxied}")
        return self.libspu.link.create_brpc(desc, rank)

    def close(self) -> None:
        self.proxy.kill()
        self.proxy.wait()


def _proxy(delay_s: float, routes: list[str]) -> None:
    """Forward each listen:target port pair, delivering every chunk `delay_s` after it arrived."""
    import asyncio

    async def pipe(reader, writer):
        queue: asyncio.Queue = asyncio.Queue()

        async def receive():
            while data := await reader.read(1 << 16):
                await queue.put((time.monotonic() + delay_s, data))
            await queue.put((time.monotonic() + delay_s, b""))

        async def deliver():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
        await asyncio.gather(receive(), deliver())

    def forward(target: int):
        async def connected(reader, writer):
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target)
            await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))
        return connected

    async def serve():
        servers = [await asyncio.start_server(forward(int(target)), "127.0.0.1", int(listen))
                   for listen, target in (route.split(":") for route in routes)]
        print("ready", flush=True)
        await asyncio.gather(*(server.serve_forever() for server in servers))
    asyncio.run(serve())


def _run_all(jobs: list[dict], spu: dict, repeats: int, capture: _Capture, link) -> list[dict]:
    """Both parties' runtimes, built once over `link(rank)`, run every job 1 + `repeats` times in turn;
    party 0 profiles."""
    libspu, spu_api, config = spu["libspu"], spu["api"], spu["config"]
    runs = 1 + repeats
    wall = {(j, run, rank): 0.0 for j in range(len(jobs)) for run in range(runs) for rank in range(2)}
    outputs: dict = {}
    logs: dict = {}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def party(rank: int) -> None:
        try:
            rank_config = libspu.RuntimeConfig(config)
            rank_config.enable_pphlo_profile = rank_config.enable_hal_profile = rank == 0
            runtime = spu_api.Runtime(link(rank), rank_config)
            for j, job in enumerate(jobs):
                for run in range(runs):
                    for name, share in zip(job["names"], job["shares"]):
                        runtime.set_var(name, share[rank])
                    barrier.wait()
                    started = time.perf_counter()
                    runtime.run(job["executable"])
                    wall[j, run, rank] = time.perf_counter() - started
                    barrier.wait()  # both done: party 0's profile of this run is complete
                    if rank == 0:
                        logs[j, run] = capture.new_text()
                outputs[j, rank] = runtime.get_var(job["executable"].output_names[0])
                for name in job["names"]:
                    runtime.del_var(name)
        except BaseException as error:  # reported by the main thread; a failed party must not hang the other
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=party, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    results = []
    for j, job in enumerate(jobs):
        measured = []
        for run in range(runs):
            entry = parse_profile(logs[j, run])
            entry["wall_s"] = max(wall[j, run, 0], wall[j, run, 1])
            measured.append(entry)
        result = job["io"].reconstruct([outputs[j, 0], outputs[j, 1]])
        results.append({**job["layer"],
                        "pphlo_ops": sorted(set(re.findall(r"pphlo\.(\w+)", job["executable"].code.decode()))),
                        "max_abs_error": float(np.max(np.abs(result - job["expected"]))),
                        "warm_up": measured[0], "runs": measured[1:]})
    return results


def execute(request: dict) -> dict:
    import spu
    import spu.api as spu_api
    import spu.libspu as libspu
    import spu.utils.frontend as spu_fe

    field_bits = request.get("field_bits", 64)
    config = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.CHEETAH, field=getattr(libspu.FieldType, FIELDS[field_bits]))
    config.fxp_fraction_bits = request.get("fraction_bits", DEFAULT_FRACTION_BITS[field_bits])
    rng = np.random.default_rng(request.get("seed", 0))
    handles = {"libspu": libspu, "api": spu_api, "frontend": spu_fe, "config": config}
    capture = _Capture()  # before compiling: SPU logs from the first call on
    try:
        jobs = [_compile(layer, handles, rng) for layer in request["layers"]]
        capture.new_text()
        repeats = request.get("repeats", 3)
        delay = request.get("flight_delay_s")
        if delay is None:
            layers = _session(jobs, handles, repeats, capture, 0.0)
            transport = "TCP (brpc) on this machine, two threads"
        else:
            layers = _with_flights(jobs, handles, repeats, capture, float(delay))
            transport = (f"TCP (brpc) on this machine, two threads; sequential flights from a second session "
                         f"with {1000 * delay:g} ms added to every message")
    finally:
        capture.restore()
    return {"schema": "pisim.spu-run/1", "spu": spu.__version__, "protocol": "cheetah", "field_bits": field_bits,
            "fraction_bits": config.fxp_fraction_bits, "parties": 2, "transport": transport, "layers": layers}


def _session(jobs: list[dict], spu: dict, repeats: int, capture: _Capture, delay_s: float) -> list[dict]:
    link = _DelayedTcpLink(spu["libspu"], delay_s)
    try:
        return _run_all(jobs, spu, repeats, capture, link)
    finally:
        link.close()


def _with_flights(jobs: list[dict], spu: dict, repeats: int, capture: _Capture, delay_s: float) -> list[dict]:
    """Each job over TCP twice, through a proxy without delay and one adding `delay_s` to every message:
    the median wall-time difference over `delay_s` is the number of flights one after another."""
    plain, delayed = (_session(jobs, spu, repeats, capture, delay) for delay in (0.0, delay_s))
    for layer, slow in zip(plain, delayed):
        walls = [sorted(run["wall_s"] for run in entry["runs"]) for entry in (layer, slow)]
        medians = [w[len(w) // 2] if len(w) % 2 else (w[len(w) // 2 - 1] + w[len(w) // 2]) / 2 for w in walls]
        layer["delayed_runs_wall_s"] = walls[1]
        layer["sequential_flights"] = (medians[1] - medians[0]) / delay_s
    return plain


def main() -> int:
    if sys.argv[1:2] == ["--proxy"]:
        _proxy(float(sys.argv[2]), sys.argv[3:])
        return 0
    request = json.load(sys.stdin)
    json.dump(execute(request), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
