"""frontier.json's typed records (optimizer.records): what the search writes is what `pisim report` and
`--resume` read back, a file of the wrong shape is one line naming the field, and a ReLU budget is in ReLUs.

The documents are the report fixtures (tests/data/report), frontier.json files in the optimizer's schema.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from conftest import run_cli
from optimizer.budget import RELUS, Budget
from optimizer.records import FrontierDocument, pareto_front
from pisim.errors import UserError
from pisim.io import atomic_write
from pisim.report.search import frontier_table

DATA = Path(__file__).parent / "data" / "report"
COMPLETE, INTERRUPTED = DATA / "search_seed0.json", DATA / "search_seed2_interrupted.json"
STAGE = {"stage": "S1", "feature_map": "64x32x32", "relus": 196608, "latency_s": 70.5, "accuracy": 0.41,
         "gain": 0.3, "gain_per_s": 0.0042, "gain_per_kilo_relu": 0.0015, "cull_order": 1}


def fixture(path: Path = COMPLETE) -> dict:
    document = json.loads(path.read_text())
    # what the fixtures leave out and the search writes: its criticality and its options
    document.update(criticality=[dict(STAGE)], search={"model": document["model"], "seed": document["seed"]})
    return document


@pytest.mark.parametrize("path", [COMPLETE, INTERRUPTED])
def test_written_then_read_is_equal(tmp_path, path):
    record = FrontierDocument.from_dict(fixture(path), path)
    written = tmp_path / "frontier.json"
    atomic_write(written, record.to_json())
    again = FrontierDocument.read(written)
    assert again == record
    assert again.to_json() == written.read_text()  # and writing it back changes no byte


def test_records_keep_what_the_file_says():
    document = fixture()
    record = FrontierDocument.from_dict(document, COMPLETE)
    assert record.budget == Budget(90.0, "s", "online", "latency")
    assert [c.id for c in record.candidates] == [c["id"] for c in document["candidates"]]
    assert record.candidates[0].curve[0] == document["candidates"][0]["curve"][0]
    assert record.criticality[0].gain_per_s == STAGE["gain_per_s"]
    assert record.to_dict() == document


# Every field the reader checks, and a value of the wrong type for it.
WRONG_TYPES = [
    (("status",), 1), (("command",), 1), (("model",), 1), (("dataset",), 1), (("strategy",), 1),
    (("objective",), 1), (("seed",), "0"), (("seed",), True), (("setting",), []), (("setting", "protocol"), 1),
    (("setting", "network"), None), (("setting", "client_profile"), 1), (("setting", "server_profile"), 1),
    (("setting", "threads"), "1"), (("setting", "phase"), 1), (("setting", "latency_budget_s"), "90s"),
    (("baseline",), "x"), (("baseline", "relus"), 1.5), (("baseline", "latency"), 1),
    (("baseline", "latency", "online_s"), "1"), (("baseline", "latency", "offline_s"), None),
    (("baseline", "latency", "total_s"), []), (("baseline", "communication", "online_bytes"), "1"),
    (("baseline", "communication", "offline_bytes"), {}), (("baseline", "accuracy"), "0.7"),
    (("criticality",), {}), (("criticality", 0), 1), (("criticality", 0, "stage"), 1),
    (("criticality", 0, "relus"), "1"), (("criticality", 0, "gain_per_s"), "inf"),
    (("criticality", 0, "cull_order"), 1.0),
    (("candidates",), {}), (("candidates", 0), []), (("candidates", 0, "id"), 7), (("candidates", 0, "config"), []),
    (("candidates", 0, "relus"), True), (("candidates", 0, "latency", "total_s"), "1"),
    (("candidates", 0, "communication"), []), (("candidates", 0, "cost"), "{}"), (("candidates", 0, "status"), 1),
    (("candidates", 0, "accuracy"), "0.76"), (("candidates", 0, "kd"), 1), (("candidates", 0, "curve"), {}),
    (("candidates", 0, "curve", 0, "epoch"), "1"), (("candidates", 0, "curve", 0, "train_loss"), "1.2"),
    (("candidates", 0, "curve", 0, "test_accuracy"), "0.7"), (("candidates", 0, "on_frontier"), 0),
    (("candidates", 0, "export"), 7), (("frontier",), "cull-S1"), (("frontier", 0), 7), (("search",), []),
]
# Numbers of the right type that no search writes: negative, beyond float range, out of a count's range.
OUT_OF_RANGE = [(("setting", "latency_budget_s"), -10.0), (("baseline", "latency", "online_s"), 10**400),
                (("candidates", 0, "communication", "online_bytes"), -1), (("candidates", 0, "relus"), 2**64),
                (("setting", "threads"), 0), (("seed",), -1), (("criticality", 0, "cull_order"), 0),
                (("candidates", 0, "curve", 0, "train_loss"), -0.5)]
NON_FINITE = [(("setting", "latency_budget_s"), math.inf), (("baseline", "latency", "online_s"), math.nan),
              (("candidates", 0, "accuracy"), math.nan),
              (("candidates", 0, "communication", "online_bytes"), -math.inf),
              (("criticality", 0, "gain_per_s"), math.nan)]


def field_name(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def mutated(tmp_path: Path, path: tuple, value) -> Path:
    document = fixture()
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    target[last] = value
    written = tmp_path / "frontier.json"
    written.write_text(json.dumps(document))
    return written


@pytest.mark.parametrize("path, value", WRONG_TYPES + OUT_OF_RANGE,
                         ids=[f"{field_name(p)}={v!r}"[:60] for p, v in WRONG_TYPES + OUT_OF_RANGE])
def test_pisim_report_rejects_each_wrong_field_in_one_line_exit_2(tmp_path, path, value):
    written = mutated(tmp_path, path, value)
    result = run_cli("report", written)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1 and result.stdout == ""
    assert str(written) in lines[0] and field_name(path) in lines[0], lines[0]


@pytest.mark.parametrize("path, value", NON_FINITE, ids=[f"{field_name(p)}={v!r}" for p, v in NON_FINITE])
def test_non_finite_numbers_are_refused_in_the_file_and_in_the_records(tmp_path, path, value):
    result = run_cli("report", mutated(tmp_path, path, value))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is not a JSON number" in result.stderr
    document = json.loads(mutated(tmp_path, path, 0.5).read_text())  # the same document built in memory
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(UserError, match=rf"'{re.escape(field_name(path))}' must be a finite number"):
        FrontierDocument.from_dict(document, "in memory")


def test_a_wrong_field_is_exit_2_from_a_real_process(tmp_path):
    written = mutated(tmp_path, ("candidates", 1, "latency", "online_s"), "fast")
    result = run_cli("report", written, fresh_interpreter=True)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "'candidates[1].latency.online_s' must be int or float" in result.stderr


def test_a_relu_budget_is_counted_in_relus():
    record = FrontierDocument.from_dict({**fixture(), "objective": "relus"}, COMPLETE)
    baseline = record.baseline
    applied = record.search_budget
    assert (applied.unit, applied.objective) == (RELUS, "relus")
    assert applied.limit == math.floor(90.0 / baseline.seconds("online") * baseline.relus)
    for candidate in record.candidates:  # the floor admits exactly the networks the seconds' share does
        assert applied.fits(candidate) == (candidate.relus <= 90.0 / baseline.seconds("online") * baseline.relus)
    title = frontier_table(record).title
    assert f"online budget {applied.limit:,} ReLUs (90 s at the baseline's rate)" in title
    latency_title = frontier_table(FrontierDocument.from_dict(fixture(), COMPLETE)).title
    assert latency_title.endswith("online budget 90 s") and "ReLUs" not in latency_title


def test_pareto_front_drops_the_dominated_and_breaks_ties_by_id():
    record = FrontierDocument.from_dict(fixture(), COMPLETE)
    trained = [c for c in record.candidates if c.status == "trained"]
    front = pareto_front(trained, "online")
    assert tuple(c.id for c in front) == record.frontier  # the frontier the search wrote
    for dominated in set(c.id for c in trained) - set(record.frontier):
        loser = record.candidate(dominated)
        assert any(c.seconds("online") <= loser.seconds("online") and c.accuracy >= loser.accuracy for c in front)
    twin = dataclasses.replace(front[0], id="a-twin")  # same price, same accuracy
    assert [c.id for c in pareto_front([front[0], twin], "online")] == ["a-twin"]
    assert [c.id for c in pareto_front([twin, front[0]], "online")] == ["a-twin"]
