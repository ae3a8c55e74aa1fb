"""Predicted vs measured Delphi costs (Garimella et al.'s runs of the Delphi code, reference sections 2.2b-3).

Prices the networks Delphi ran (plain conv chains: delphi-resnet18, delphi-resnet32,
delphi-resnet18-tiny) and the CIFAR ResNet18 with shortcut convs, under `delphi` with the
delphi-epyc7502 profile on both sides (client and server shared one EPYC in those runs),
single-thread. The HE constants were fitted once, on ResNet18-CIFAR's per-layer times; the
ResNet-32 and 64x64 rows use them unchanged. `--fit` refits and prints them. A last table
cross-checks delphi and client-garbler against our re-run of the Cryptonite simulator.

    PYTHONPATH=. python benchmarks/reproduce_delphi.py [--fit]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import cost_models
from cost_models.handlers import he_counts
from pisim.graph import OpKind, capture
from pisim.zoo import build_zoo_model

# Corrected single-thread per-layer HE seconds, forward order (reference 2.2b): label -> (seconds, layers).
MEASURED_HE_LAYERS = [("stem 3->64 @32", 1.699, 1), ("64->64 @32", 13.44, 4), ("64->128 s2", 26.756, 1),
                      ("128->128 @16", 14.523, 3), ("128->256 s2", 29.088, 1), ("256->256 @8", 15.815, 3),
                      ("256->512 s2", 31.722, 1), ("512->512 @4", 17.144, 3), ("FC 2048->10", 0.072, 1)]

# Measured totals (reference 2.3), B and s. Keys say how the prediction is read off the priced per-layer Costs.
MEASURED = {
    "delphi-resnet18": {"GC material + OT sender (offline, down)": 9.51e9 + 749e6, "OT receiver (offline, up)": 374e6,
                        "online labels (down)": 659.6e6, "online GC evaluation (client s)": 10.17,
                        "client storage": 10.17e9, "HE eval, server (s)": 286.0, "HE ciphertexts up (offline)": 321.5e6,
                        "HE ciphertexts down (offline)": 47.2e6, "garbling + encode (offline server s)": 16.99 + 4.23,
                        "online server encode (s)": 1.99, "client HE encrypt+decrypt (s)": 2.76 + 0.17,
                        "online linear on shares (server s)": 0.43, "online client->server bytes": 5.0e6},
    "delphi-resnet32": {"GC material + OT sender (offline, down)": 5.17e9 + 407e6, "OT receiver (offline, up)": 204e6,
                        "online labels (down)": 358.9e6, "online GC evaluation (client s)": 5.54,
                        "client storage": 5.53e9, "HE eval, server (s)": 40.9, "HE ciphertexts up (offline)": 198.3e6,
                        "HE ciphertexts down (offline)": 24.6e6, "garbling + encode (offline server s)": 9.52 + 2.12,
                        "online server encode (s)": 1.22, "client HE encrypt+decrypt (s)": 1.69 + 0.16,
                        "online linear on shares (server s)": 0.28, "online client->server bytes": 2.7e6},
    "delphi-resnet18-tiny": {"GC material + OT sender (offline, down)": 38.04e9 + 2.99e9,
                             "OT receiver (offline, up)": 1.50e9, "online labels (down)": 2.64e9,
                             "online GC evaluation (client s)": 41.33, "client storage": 40.66e9,
                             "HE eval, server (s)": 1055.4, "HE ciphertexts up (offline)": 1.27e9,
                             "HE ciphertexts down (offline)": 187.2e6,
                             "garbling + encode (offline server s)": 68.18 + 17.89, "online server encode (s)": 7.21,
                             "client HE encrypt+decrypt (s)": 11.30 + 0.58, "online linear on shares (server s)": 0.61,
                             "online client->server bytes": 19.9e6},
}
MODELS = {"delphi-resnet18": ((3, 32, 32), 10), "delphi-resnet32": ((3, 32, 32), 10),
          "delphi-resnet18-tiny": ((3, 64, 64), 200), "cifar-resnet18": ((3, 32, 32), 10)}


def graph_of(name: str):
    input_size, classes = MODELS[name]
    return capture(build_zoo_model(name, num_classes=classes), input_size, source=name).graph


def predicted(graph, setting):
    """The measured quantities, read off the per-layer Costs that price() returns."""
    estimate = cost_models.price(graph, setting)
    relu = [l.cost for l in estimate.layers if l.kind == "relu"]
    linear = [l.cost for l in estimate.layers if l.kind in ("conv2d", "linear")]
    total = lambda costs, phase, field: sum(getattr(c.phase(phase), field) for c in costs)  # noqa: E731
    values = {
        "GC material + OT sender (offline, down)": total(relu, "offline", "down_bytes"),
        "OT receiver (offline, up)": total(relu, "offline", "up_bytes"),
        "online labels (down)": total(relu, "online", "down_bytes"),
        "online GC evaluation (client s)": total(relu, "online", "client_s"),
        "client storage": estimate.total.client_storage_bytes,
        "HE eval, server (s)": total(linear, "offline", "server_s"),
        "HE ciphertexts up (offline)": total(linear, "offline", "up_bytes"),
        "HE ciphertexts down (offline)": total(linear, "offline", "down_bytes"),
        "garbling + encode (offline server s)": total(relu, "offline", "server_s"),
        "online server encode (s)": total(relu, "online", "server_s"),
        "client HE encrypt+decrypt (s)": total(linear, "offline", "client_s"),
        "online linear on shares (server s)": total(linear, "online", "server_s"),
        "online client->server bytes": estimate.total.online.up_bytes,
    }
    he_layers = [op for op in graph.ops if op.kind in (OpKind.CONV2D, OpKind.LINEAR)]
    return values, estimate, [(op, he_counts(op, setting.context, server_rotates_input=False)) for op in he_layers]


def error_pct(pred: float, meas: float) -> str:
    return f"{100 * (pred - meas) / meas:+6.1f}%"


def print_totals(name: str, setting) -> None:
    graph = graph_of(name)
    values, estimate, _ = predicted(graph, setting)
    c = setting.context.constants
    gc_bytes = estimate.relus * c["relu_and_gates"] * c["gc_bytes_per_and"]
    ot_sender = estimate.relus * c["share_bits"] * c["ot_sender_bytes_per_transfer"]
    print(f"\n== {name}: {graph.total_relus:,} ReLUs; online {estimate.latency('online'):.2f} s, "
          f"offline {estimate.latency('offline'):.2f} s on network '{setting.network.name}'")
    print(f"{'quantity':42s} {'predicted':>14s} {'measured':>14s} {'error':>8s}")
    for key, measured in MEASURED.get(name, MEASURED["delphi-resnet18"]).items():
        print(f"{key:42s} {values[key]:14.5g} {measured:14.5g} {error_pct(values[key], measured):>8s}")
    print(f"  of which GC material {gc_bytes:.5g} B and OT sender {ot_sender:.5g} B "
          f"(relus x constants of the delphi protocol file)")


def print_he_layers(setting) -> None:
    _, estimate, _ = predicted(graph_of("delphi-resnet18"), setting)
    seconds = [l.cost.offline.server_s for l in estimate.layers if l.kind in ("conv2d", "linear")]
    groups, index = [], 0
    for label, measured, count in MEASURED_HE_LAYERS:
        groups.append((label, float(np.mean(seconds[index:index + count])), measured, count))
        index += count
    print("\n== delphi-resnet18 per-layer HE, single thread (s), measured = corrected means (reference 2.2b)")
    print(f"{'layer':18s} {'n':>2s} {'predicted':>10s} {'measured':>10s} {'error':>8s}")
    for label, pred, measured, count in groups:
        print(f"{label:18s} {count:2d} {pred:10.3f} {measured:10.3f} {error_pct(pred, measured):>8s}")
    total_pred, total_meas = sum(seconds), sum(m * n for _, m, n in MEASURED_HE_LAYERS)
    print(f"{'total':18s} {'':2s} {total_pred:10.2f} {total_meas:10.2f} {error_pct(total_pred, total_meas):>8s}")


def fit(setting) -> None:
    """Least squares of per-layer HE time on (multiplies, key switches, ciphertexts in+out), layer-weighted."""
    _, _, layers = predicted(graph_of("delphi-resnet18"), setting)
    rows, index = [], 0
    for _, measured, count in MEASURED_HE_LAYERS:
        n = layers[index][1]
        rows.append(([n.multiplies, n.key_switches, n.uploads + n.downloads], measured, count))
        index += count
    weights = np.sqrt([c for *_, c in rows])
    design = np.array([r for r, _, _ in rows], float) * weights[:, None]
    target = np.array([m for _, m, _ in rows]) * weights
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    print("\nfitted: he_ct_pt_multiply = %.6g s, he_key_switch = %.6g s, he_ciphertext_io = %.6g s" % tuple(solution))


# Our re-run of the Cryptonite simulator (e2e_latency.py; 1 thread everywhere, 100/500 Mbit/s, Atom client),
# ResNet18-CIFAR (reference section 3): a simulator's output, not a measurement.
CRYPTONITE_SIMULATOR = {"delphi": {"online (s)": 206, "GC garble (s)": 62, "GC eval (s)": 195,
                                   "offline comm (s)": 223, "offline+online (s)": 787},
                        "client-garbler": {"online (s)": 98.7, "GC garble (s)": 387, "GC eval (s)": 32,
                                           "offline comm (s)": 790, "offline+online (s)": 1571}}


def print_simulator_cross_check(graph) -> None:
    print("\n== delphi-resnet18 vs the Cryptonite simulator re-run (reference 3; a simulator, not a measurement): "
          "atom-z8350 client, epyc7502-1thread server, cryptonite network")
    print(f"{'protocol':15s} {'quantity':18s} {'predicted':>10s} {'simulator':>10s} {'error':>8s}")
    for protocol, reference in CRYPTONITE_SIMULATOR.items():
        setting = cost_models.load_setting(protocol, "cryptonite", "atom-z8350", "epyc7502-1thread")
        estimate = cost_models.price(graph, setting)
        relu = [l.cost for l in estimate.layers if l.kind == "relu"]
        garbler = setting.protocol.roles["garbler"]
        evaluator = "client" if garbler == "server" else "server"
        net = setting.network
        offline = estimate.total.offline
        ours = {"online (s)": estimate.latency("online"),
                "GC garble (s)": sum(getattr(c.offline, f"{garbler}_s") for c in relu),
                "GC eval (s)": sum(getattr(c.online, f"{evaluator}_s") for c in relu),
                "offline comm (s)": net.transfer_seconds(offline.up_bytes, offline.down_bytes, 0),
                "offline+online (s)": estimate.latency("total")}
        for key, value in reference.items():
            print(f"{protocol:15s} {key:18s} {ours[key]:10.1f} {value:10.1f} {error_pct(ours[key], value):>8s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit the three HE constants and print them")
    parser.add_argument("--network", default="cryptonite", help="network for the latency line (default: cryptonite)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = cost_models.load_setting("delphi", args.network, client_profile="delphi-epyc7502",
                                       server_profile="delphi-epyc7502")
    if args.fit:
        fit(setting)
    print_he_layers(setting)
    for name in ("delphi-resnet18", "cifar-resnet18", "delphi-resnet32", "delphi-resnet18-tiny"):
        print_totals(name, setting)
    print_simulator_cross_check(graph_of("delphi-resnet18"))
    print("\n(cifar-resnet18 is compared with the delphi-resnet18 measurements: it adds three shortcut convs "
          "and residual adds the measured network never had)")


if __name__ == "__main__":
    main()
