"""`optimizer search` end to end on the bundled digits: the budget holds, exports price back to the searched
latency, a finished search is not overwritten, and (slow) a search killed by a real signal resumes to the same
frontier."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from optimizer.records import FrontierDocument


# The cheapest search that still decides something: 8x8 digits, one epoch per job, one candidate trained.
QUICK = ["--latency-budget", "2.5s", "--input-size", "3x8x8", "--epochs", "1", "--baseline-epochs", "1",
         "--criticality-epochs", "1", "--batch-size", "128", "--max-train", "1", "--alphas", "1", "--rhos", "1",
         "--no-progress", "--format", "json"]
# For the kill-and-resume test: candidates need more than one epoch to be caught mid-schedule.
SEARCH = ["--latency-budget", "2.5s", "--input-size", "3x8x8", "--epochs", "3", "--baseline-epochs", "2",
          "--criticality-epochs", "1", "--batch-size", "128", "--max-train", "2", "--alphas", "1", "--rhos", "1",
          "--no-progress", "--format", "json"]


def search_process(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optimizer", "search", *SEARCH, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=900)
    return process.returncode, stdout, stderr


def frontier(out: Path) -> dict:
    return json.loads((out / "frontier.json").read_text())


def outcome(document: dict) -> list[tuple]:
    """What a resumed search must reproduce: every candidate's status, accuracy and curve, and the frontier."""
    return [(e["id"], e["status"], e["accuracy"], e["curve"], e["on_frontier"]) for e in document["candidates"]]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quick")
    done = run_cli("search", *QUICK, "--out", out, module="optimizer")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frontier"] == frontier(out)["frontier"]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    code, stdout, stderr = finished(search_process(out))
    assert code == 0, stderr
    assert json.loads(stdout)["frontier"] == frontier(out)["frontier"]
    return out


def test_every_frontier_point_fits_the_budget(quick):
    document = frontier(quick)
    assert document["status"] == "complete" and document["frontier"]
    budget = document["setting"]["latency_budget_s"]
    for entry in document["candidates"]:
        fits = entry["latency"]["online_s"] <= budget
        assert fits == (entry["status"] != "over_budget")
        if entry["on_frontier"]:
            assert fits and entry["status"] == "trained" and 0 <= entry["accuracy"] <= 1
            assert len(entry["curve"]) == 1 and entry["export"].endswith(".pt2")  # --epochs 1
    assert document["baseline"]["latency"]["online_s"] > budget


def test_the_frontier_the_search_wrote_reads_back_to_the_same_bytes(quick):
    path = quick / "frontier.json"
    assert FrontierDocument.read(path).to_json() == path.read_text()


def test_a_relu_objective_search_budgets_and_reports_relus(quick, tmp_path):
    out = tmp_path / "relus"  # the quick search's cache: its baseline and criticality jobs are reused
    done = run_cli("search", *QUICK, "--objective", "relus", "--cache-dir", quick / "jobs", "--out", out,
                   module="optimizer")
    assert done.returncode == 0, done.stderr
    document = FrontierDocument.read(out / "frontier.json")
    baseline, budget = document.baseline, document.search_budget
    assert budget.unit == "ReLUs" and budget.limit == math.floor(2.5 / baseline.seconds("online") * baseline.relus)
    said = f"{budget.limit:,} ReLUs (2.5 s at the baseline's rate)"
    assert f"budget {said}" in done.stderr
    for candidate in document.candidates:
        assert (candidate.status != "over_budget") == (candidate.relus <= budget.limit)
    if document.frontier:
        assert json.loads(done.stdout)["title"].endswith(f"online budget {said}")
    else:
        assert f"no candidate fits the online budget of {said}" in done.stderr


def test_pisim_estimate_prices_each_exported_frontier_model_at_its_searched_latency(quick):
    document = frontier(quick)
    for entry in (e for e in document["candidates"] if e["on_frontier"]):
        process = run_cli("estimate", quick / entry["export"], "--protocol", "delphi", "--network", "lan",
                          "--format", "json")
        assert process.returncode == 0, process.stderr
        estimate = json.loads(process.stdout)["estimate"]
        assert estimate["relus"] == entry["relus"]
        assert estimate["latency"] == pytest.approx(entry["latency"], rel=1e-9)


def wait_for(pattern: str, root: Path, process: subprocess.Popen, skip: set[Path] = frozenset()) -> Path:
    deadline = time.monotonic() + 600  # generous: the machine is shared
    while time.monotonic() < deadline:
        found = [p for p in root.glob(pattern) if p not in skip]
        if found:
            return found[0]
        assert process.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} appeared")


@pytest.mark.slow  # four searches, two of them interrupted by real signals
@pytest.mark.timeout(1800)
def test_killed_search_resumes_to_the_same_frontier(reference, tmp_path):
    out = tmp_path / "run"
    first = search_process(out)
    candidate_checkpoint = "jobs/cull-*/checkpoint.pt"  # a candidate in flight, one epoch done
    in_flight = wait_for(candidate_checkpoint, out, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert frontier(out)["status"] == "interrupted"

    second = search_process(out, "--resume")
    wait_for(candidate_checkpoint, out, second, skip={in_flight})  # the next candidate started: stop it cleanly
    second.send_signal(signal.SIGTERM)
    code, _, stderr = finished(second)
    assert code == 143 and "--resume" in stderr and "Traceback" not in stderr
    assert frontier(out)["status"] == "interrupted"

    code, _, stderr = finished(search_process(out, "--resume"))
    assert code == 0, stderr
    assert frontier(out)["status"] == "complete"
    assert outcome(frontier(out)) == outcome(frontier(reference))
    assert frontier(out)["frontier"] == frontier(reference)["frontier"]


def test_a_finished_search_is_not_overwritten_and_resume_checks_its_options(quick):
    before = (quick / "frontier.json").read_bytes()
    process = run_cli("search", *QUICK, "--out", quick, module="optimizer")
    assert process.returncode == 2 and "--resume" in process.stderr
    changed = [a if a != "2.5s" else "3s" for a in QUICK]
    process = run_cli("search", *changed, "--out", quick, "--resume", module="optimizer")
    assert process.returncode == 2 and "latency_budget_s" in process.stderr
    assert process.stderr.count("\n") == 1
    assert (quick / "frontier.json").read_bytes() == before
