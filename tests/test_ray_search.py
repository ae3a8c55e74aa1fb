"""`optimizer search --executor ray` end to end, each run starting its own local Ray (this machine's 2 CPUs):
the same frontier.json as `--executor local` (and the same `pisim report` of it); a Ray worker killed
mid-candidate, or the driver itself killed, still ends with every candidate accounted for and the same frontier."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

ray = pytest.importorskip("ray")

from optimizer.executors.ray import WORKER_FILE  # noqa: E402
from optimizer.training import CHECKPOINT, RESULT  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # three or four small searches, a minute each on 2 cores

# Small enough for a test, big enough to mean something: 5 candidates priced, the strategy's 2 picks trained.
SEARCH = ["search", "--latency-budget", "10s", "--input-size", "3x8x8", "--alphas", "1", "--rhos", "1",
          "--epochs", "3", "--baseline-epochs", "2", "--criticality-epochs", "1", "--max-train", "3",
          "--train-threads", "1", "--no-progress", "--format", "json"]  # one thread per job: alike bit for bit
COMPARED = ("id", "config", "relus", "latency", "status", "accuracy", "curve", "on_frontier", "export")


def command(out: Path, *extra: str) -> list[str]:
    """The search as a process of its own, for the tests that kill it mid-run."""
    return [sys.executable, "-m", "optimizer", *SEARCH, "--out", str(out), *extra]


def searched(out: Path, *extra: str) -> dict:
    done = run_cli(*SEARCH, "--out", out, *extra, module="optimizer", timeout=600,
                   fresh_interpreter=True)  # each search starts and stops its own Ray
    assert done.returncode == 0, done.stderr
    return json.loads((out / "frontier.json").read_text())


def comparable(document: dict) -> dict:
    return {"frontier": document["frontier"], "baseline": document["baseline"],
            "criticality": document["criticality"], "status": document["status"],
            "candidates": [{k: c[k] for k in COMPARED} for c in document["candidates"]]}


@pytest.fixture(scope="module")
def local_search(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("local") / "out"
    return {**searched(out), "path": out / "frontier.json"}


def candidate_directories(out: Path) -> list[Path]:
    jobs = out / "jobs"
    return [d for d in sorted(jobs.iterdir()) if not d.name.startswith(("baseline-", "criticality-"))] \
        if jobs.is_dir() else []


def test_ray_search_writes_the_same_frontier_as_the_local_one(local_search, tmp_path):
    remote = searched(tmp_path / "out", "--executor", "ray")
    assert sum(c["status"] == "trained" for c in remote["candidates"]) >= 2 and remote["frontier"]
    assert comparable(remote) == comparable(local_search)  # configs, latencies and accuracies: all identical
    reports = [run_cli("report", path, "--rows", "all", "--format", "json", timeout=120)
               for path in (tmp_path / "out" / "frontier.json", local_search["path"])]
    assert [r.returncode for r in reports] == [0, 0] and reports[0].stdout == reports[1].stdout


def test_a_killed_ray_worker_costs_only_a_retry_of_its_candidate(local_search, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(command(out, "--executor", "ray"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    killed: dict[Path, int] = {}
    while driver.poll() is None and not killed:
        for directory in candidate_directories(out):
            if (directory / CHECKPOINT).is_file() and (directory / WORKER_FILE).is_file():
                pid = json.loads((directory / WORKER_FILE).read_text())["pid"]
                os.kill(pid, signal.SIGKILL)  # the process training this candidate, mid-schedule
                killed[directory] = pid
                break
        time.sleep(0.02)
    _, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    assert killed, "no candidate was caught mid-schedule"
    (directory, pid), = killed.items()
    assert json.loads((directory / WORKER_FILE).read_text())["pid"] != pid  # trained again by another worker
    assert (directory / RESULT).is_file()
    document = json.loads((out / "frontier.json").read_text())
    assert not [c["id"] for c in document["candidates"] if c["status"] in ("pending", "failed")]
    assert comparable(document) == comparable(local_search)


def test_a_killed_driver_is_continued_with_resume(local_search, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(command(out, "--executor", "ray"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    finished: list[Path] = []
    while driver.poll() is None and not finished:
        finished = [d for d in candidate_directories(out) if (d / RESULT).is_file()]
        time.sleep(0.05)
    driver.kill()  # no clean-up: the driver's machine went away
    driver.wait(timeout=60)
    assert finished, "the search ended before a candidate finished"
    assert json.loads((out / "frontier.json").read_text())["status"] == "interrupted"
    stamps = {d: (d / RESULT).stat().st_mtime_ns for d in finished}

    resumed = searched(out, "--executor", "ray", "--resume")
    assert {d: (d / RESULT).stat().st_mtime_ns for d in finished} == stamps  # finished candidates not retrained
    assert comparable(resumed) == comparable(local_search)
