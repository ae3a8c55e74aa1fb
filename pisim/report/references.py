"""Published reference points (pisim/report/data/references.toml) and their latency under the user's setting.

The papers give ReLU counts and accuracies; their own latencies were measured on set-ups we cannot
confirm. So a reference point's latency is always ours: the network its method used (or the closest
zoo model) is captured once, `relus` ReLU elements are kept, spread over its ReLU call sites in
proportion to their size, and the graph is priced with the same setting as the user's results.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from cost_models.estimate import PhaseFigures
from pisim.errors import UserError
from pisim.graph import OpGraph, capture
from pisim.tomlparser import tomllib
from pisim.zoo import ZOO, build_zoo_model

REFERENCES_SCHEMA = "pisim.references/1"
TAGS = ("confirmed", "derived", "read off a figure")  # strongest first: a method shows its weakest
REMOVED_AS = ("identity", "polynomial")


@dataclass(frozen=True)
class ReferencePoint:
    relus: int
    accuracy: float  # percent, as the papers report it
    relus_tag: str
    accuracy_tag: str
    source: str


@dataclass(frozen=True)
class ReferenceMethod:
    key: str
    name: str
    citation: str
    dataset: str
    network: str
    priced_as: str  # zoo model whose graph prices the points
    num_classes: int
    removed_as: str
    points: tuple[ReferencePoint, ...]
    accuracy_note: str = ""

    @property
    def tag(self) -> str:
        """The weakest confidence tag among the method's numbers."""
        tags = {t for p in self.points for t in (p.relus_tag, p.accuracy_tag)}
        return max(tags, key=TAGS.index)


@dataclass(frozen=True)
class PricedReference(PhaseFigures):
    method: ReferenceMethod
    point: ReferencePoint


def load_references() -> dict[str, ReferenceMethod]:
    text = resources.files("pisim.report").joinpath("data/references.toml").read_text()
    return parse_references(tomllib.loads(text))


def parse_references(document: Mapping[str, Any]) -> dict[str, ReferenceMethod]:
    if document.get("schema") != REFERENCES_SCHEMA:
        raise ValueError(f"references schema must be {REFERENCES_SCHEMA!r}, got {document.get('schema')!r}")
    methods = {}
    for key, entry in document["methods"].items():
        points = tuple(ReferencePoint(**p) for p in entry["points"])
        for p in points:
            if p.relus_tag not in TAGS or p.accuracy_tag not in TAGS:
                raise ValueError(f"references {key}: tags must be one of {', '.join(TAGS)}")
        if entry["removed_as"] not in REMOVED_AS or entry["priced_as"] not in ZOO:
            raise ValueError(f"references {key}: removed_as must be one of {REMOVED_AS}, priced_as a zoo name")
        fields = {k: v for k, v in entry.items() if k != "points"}
        methods[key] = ReferenceMethod(key=key, points=points, **fields)
    return methods


def select_references(names: str) -> list[ReferenceMethod]:
    """`deepreduce,snl` -> those methods, in the order given; `all` -> every shipped method."""
    known = load_references()
    wanted = list(known) if names.strip() == "all" else [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise UserError(f"--compare: unknown reference {', '.join(unknown) or repr(names)}; "
                        f"known: {', '.join(known)} (or all)")
    return [known[n] for n in dict.fromkeys(wanted)]


@lru_cache(maxsize=None)
def reference_graph(zoo_name: str, num_classes: int) -> OpGraph:
    model = build_zoo_model(zoo_name, num_classes=num_classes).eval()
    return capture(model, ZOO[zoo_name].default_input, source=zoo_name).graph


def spread_relus(graph: OpGraph, relus: int) -> dict[str, int]:
    """Keep `relus` ReLU elements, each call site in proportion to its size (largest remainders round up)."""
    total = graph.total_relus
    if not 0 <= relus <= total:
        raise ValueError(f"{graph.source} has {total:,} ReLUs; cannot keep {relus:,}")
    shares = [(op.name, op.relu_elements * relus / total) for op in graph.relu_ops]
    kept = {name: int(share) for name, share in shares}
    short = relus - sum(kept.values())
    by_remainder = sorted(shares, key=lambda item: (-(item[1] - int(item[1])), item[0]))
    for name, _ in by_remainder[:short]:
        kept[name] += 1
    return kept


def price_references(methods: list[ReferenceMethod], setting: Mapping[str, Any]) -> list[PricedReference]:
    """Price every point of `methods` under `setting` (the `setting` block of a results file)."""
    import cost_models

    loaded = cost_models.load_setting(protocol=setting["protocol"], network=setting["network"],
                                      client_profile=setting.get("client_profile"),
                                      server_profile=setting.get("server_profile"),
                                      threads=int(setting.get("threads", 1)))
    priced = []
    for method in methods:
        graph = reference_graph(method.priced_as, method.num_classes)
        for point in method.points:
            kept = spread_relus(graph, point.relus)
            poly = ({op.name: op.relu_elements - kept[op.name] for op in graph.relu_ops}
                    if method.removed_as == "polynomial" else None)
            estimate = cost_models.price(graph, loaded, relu_kept=kept, poly_elements=poly)
            figures = estimate.figures()
            priced.append(PricedReference(figures.latency, figures.communication, method, point))
    return priced


def pricing_caption(methods: list[ReferenceMethod], setting: Mapping[str, Any]) -> str:
    """What a reader must know about the reference points' latency axis."""
    priced_as = sorted({m.priced_as for m in methods})
    polynomial = [m.name for m in methods if m.removed_as == "polynomial"]
    caption = (f"Published points ({', '.join(m.name for m in methods)}) give ReLU counts and accuracy; their "
               f"latency is PISim's, not the papers': each count priced under {describe_setting(setting)} as "
               f"{' / '.join(priced_as)} keeping that many ReLUs, in proportion per layer, linear layers at full width")
    if polynomial:
        caption += f"; {', '.join(polynomial)}'s removed ReLUs priced as degree-2 polynomials"
    return caption


def describe_setting(setting: Mapping[str, Any]) -> str:
    profiles = [f"{role} {setting[f'{role}_profile']}" for role in ("client", "server")
                if setting.get(f"{role}_profile")]
    threads = setting.get("threads", 1)
    return (f"{setting['protocol']} over {setting['network']}"
            + (f" ({', '.join(profiles)}, {threads} thread{'s' if threads != 1 else ''})" if profiles else ""))
