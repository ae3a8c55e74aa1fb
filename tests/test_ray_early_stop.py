"""--early-stop asha: Ray Tune stops hopeless candidates, keeps their partial curves, trains the rest fully; a
resumed search counts the stopped ones as decided instead of training them again; a killed trial is retried
from its checkpoint."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from optimizer.candidate import Candidate  # noqa: E402
from optimizer.data import DataSpec  # noqa: E402
from optimizer.executors import job_directory, make_executor  # noqa: E402
from optimizer.executors.early_stopping import STOPPED  # noqa: E402
from optimizer.executors.ray import WORKER_FILE, shipped_code  # noqa: E402
from optimizer.io import read_json  # noqa: E402
from optimizer.models import ZooModel  # noqa: E402
from optimizer.training import CHECKPOINT, RESULT, Schedule, TrainJob  # noqa: E402

TINY = (3, 8, 8)
EPOCHS = 4  # ASHA rungs at epochs 1 and 2 (a quarter and half of the schedule)

# A local Ray cluster with Tune, training real candidates: minutes on 2 cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def candidate_job(label: str, lr: float) -> TrainJob:
    return TrainJob(label, ZooModel("cifar-resnet20", 10, TINY), DataSpec(input_size=TINY), Candidate(),
                    Schedule(epochs=EPOCHS, lr=lr), seed=0)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=shipped_code(), logging_level="warning")
    yield
    ray.shutdown()


def test_asha_stops_hopeless_candidates_and_a_resume_keeps_its_decisions(cluster, tmp_path, capsys):
    # A learning rate of 1e-7 leaves a network at chance (~10%); 0.05 reaches ~85% after one epoch.
    jobs = [candidate_job("good-a", 0.05), candidate_job("hopeless-a", 1e-7),
            candidate_job("good-b", 0.04), candidate_job("hopeless-b", 1e-7)]
    executor = make_executor("ray", tmp_path, "cpu", progress=False, options={"early_stop": "asha"})
    results = list(executor.map(jobs, may_stop_early=True))
    assert capsys.readouterr().out == ""  # Tune's chatter must not mix into a search's --format json on stdout

    assert [r.label for r in results] == [j.label for j in jobs]
    stopped = {r.label for r in results if r.stopped_early}
    # Two at a time on 2 CPUs, in this order. good-a is the first good candidate at every rung, so it is never
    # below the cut; hopeless-b starts last and meets good-a's record at the first rung, so it always stops. The
    # others depend on finishing order (ASHA may also stop good-b at the second rung, if below good-a there).
    assert "good-a" not in stopped and "hopeless-b" in stopped
    for job, result in zip(jobs, results):
        directory = job_directory(tmp_path, job)
        if result.stopped_early:
            assert (directory / STOPPED).is_file() and not (directory / RESULT).is_file()
            assert 1 <= len(result.curve) < EPOCHS and result.accuracy == result.curve[-1]["test_accuracy"]
        else:
            assert (directory / RESULT).is_file() and len(result.curve) == EPOCHS

    stamps = {j.label: (job_directory(tmp_path, j) / WORKER_FILE).stat().st_mtime_ns for j in jobs}
    resumed = list(make_executor("ray", tmp_path, "cpu", progress=False, options={"early_stop": "asha"})
                   .map(jobs, may_stop_early=True))
    assert [(r.label, r.stopped_early, r.curve) for r in resumed] == [(r.label, r.stopped_early, r.curve)
                                                                        for r in results]
    assert {j.label: (job_directory(tmp_path, j) / WORKER_FILE).stat().st_mtime_ns for j in jobs} == stamps


def test_without_may_stop_early_every_job_trains_its_full_schedule(cluster, tmp_path):
    jobs = [candidate_job("criticality-a", 0.05), candidate_job("criticality-b", 1e-7)]
    jobs = [TrainJob(j.label, j.source, j.data, j.candidate, Schedule(epochs=2, lr=j.schedule.lr), 0) for j in jobs]
    executor = make_executor("ray", tmp_path, "cpu", progress=False, options={"early_stop": "asha"})
    results = list(executor.map(jobs))
    assert [len(r.curve) for r in results] == [2, 2] and not any(r.stopped_early for r in results)


def test_a_killed_trial_is_retried_from_its_checkpoint_under_the_scheduler(cluster, tmp_path):
    jobs = [candidate_job("victim", 0.05), candidate_job("good", 0.04), candidate_job("hopeless", 1e-7)]
    victim = job_directory(tmp_path, jobs[0])
    killed: list[int] = []

    def kill_after_first_epoch() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end and not killed:
            if (victim / CHECKPOINT).is_file() and (victim / WORKER_FILE).is_file():
                pid = read_json(victim / WORKER_FILE)["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_after_first_epoch)
    watcher.start()
    executor = make_executor("ray", tmp_path, "cpu", progress=False, options={"early_stop": "asha"})
    results = list(executor.map(jobs, may_stop_early=True))
    watcher.join()
    assert killed, "the victim finished before it could be killed"
    retried = read_json(victim / WORKER_FILE)
    assert retried["pid"] != killed[0] and retried["resumed_from_epoch"] >= 1
    # trained on after the retry, keeping the epochs before it (the scheduler may still cut it at a later rung)
    epochs = [p["epoch"] for p in results[0].curve]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > retried["resumed_from_epoch"]
    assert [r.label for r in results] == ["victim", "good", "hopeless"]
