"""The Ray executor on a local 2-CPU Ray cluster: the same results as the local executor, in the jobs' order;
a killed worker costs only its job, which resumes from its last epoch checkpoint; finished jobs never go back
to the cluster; a worker's UserError reaches the user as one line; the gate search runs on a worker too."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

# A local Ray cluster takes 10 s or more to start on 2 cores, and each test trains real jobs on it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

from optimizer.candidate import Candidate  # noqa: E402
from optimizer.data import DataSpec  # noqa: E402
from optimizer.distill import Distillation  # noqa: E402
from optimizer.executors import job_directory, make_executor  # noqa: E402
from optimizer.executors.ray import WORKER_FILE, shipped_code  # noqa: E402
from optimizer.gate_search import GateOptions, GateSearchJob  # noqa: E402
from optimizer.io import read_json  # noqa: E402
from optimizer.models import ZooModel  # noqa: E402
from optimizer.pricing import Pricer, SettingChoice  # noqa: E402
from optimizer.training import CHECKPOINT, RESULT, Schedule, TrainJob  # noqa: E402
from optimizer.transforms import Variants  # noqa: E402
from pisim.errors import UserError  # noqa: E402

TINY = (3, 8, 8)  # digits on an 8x8 canvas: a ResNet-20 epoch takes a few seconds on one core


def tiny_job(label: str, seed: int, epochs: int = 2) -> TrainJob:
    return TrainJob(label, ZooModel("cifar-resnet20", 10, TINY), DataSpec(input_size=TINY), Candidate(),
                    Schedule(epochs=epochs), seed)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=shipped_code(), logging_level="warning")
    yield
    ray.shutdown()


def test_ray_results_match_local_job_for_job_in_order(cluster, tmp_path):
    jobs = [tiny_job("first", seed=1), tiny_job("second", seed=2)]
    local = list(make_executor("local", tmp_path / "local", "cpu", progress=False).map(jobs))
    remote = list(make_executor("ray", tmp_path / "ray", "cpu", progress=False).map(jobs))
    assert [r.label for r in remote] == ["first", "second"]
    # one thread each side (conftest; the Ray executor's default per job): bit-for-bit the same training
    assert [r.curve for r in remote] == [r.curve for r in local]
    assert local[0].curve != local[1].curve  # the seeds matter, so the comparison above can fail
    for job in jobs:
        worker = read_json(job_directory(tmp_path / "ray", job) / WORKER_FILE)
        assert worker["pid"] != os.getpid()  # trained in a Ray worker, not in this process


def test_finished_jobs_are_answered_from_the_cache_without_the_cluster(cluster, tmp_path):
    job = tiny_job("done", seed=3, epochs=1)
    executor = make_executor("ray", tmp_path, "cpu", progress=False)
    first = next(executor.map([job]))
    directory = job_directory(tmp_path, job)
    stamp = (directory / WORKER_FILE).stat().st_mtime_ns
    again = next(make_executor("ray", tmp_path, "cpu", progress=False).map([job]))
    assert again.cached and again.accuracy == first.accuracy
    assert (directory / WORKER_FILE).stat().st_mtime_ns == stamp  # no worker touched it


def _kill_worker_after_first_epoch(directory: Path, killed: list[int], deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if (directory / CHECKPOINT).is_file() and (directory / WORKER_FILE).is_file():
            pid = read_json(directory / WORKER_FILE)["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_killed_worker_loses_only_its_job_which_resumes_from_its_checkpoint(cluster, tmp_path):
    victim, bystander = tiny_job("victim", seed=4, epochs=4), tiny_job("bystander", seed=5, epochs=2)
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_worker_after_first_epoch,
                               args=(job_directory(tmp_path / "ray", victim), killed))
    watcher.start()
    results = list(make_executor("ray", tmp_path / "ray", "cpu", progress=False).map([victim, bystander]))
    watcher.join()
    assert killed, "the victim finished before it could be killed"
    retried = read_json(job_directory(tmp_path / "ray", victim) / WORKER_FILE)
    assert retried["pid"] != killed[0]
    assert retried["resumed_from_epoch"] >= 1  # not restarted from scratch
    assert [p["epoch"] for p in results[0].curve] == [1, 2, 3, 4]
    # the resumed run is the uninterrupted run: epochs are seeded, and the checkpoint holds optimizer and schedule
    uninterrupted = next(make_executor("local", tmp_path / "local", "cpu", progress=False).map([victim]))
    assert results[0].curve == uninterrupted.curve
    assert (job_directory(tmp_path / "ray", bystander) / RESULT).is_file()


def test_user_error_in_a_worker_is_one_line_naming_the_job(cluster, tmp_path):
    missing = TrainJob("needs-cifar", ZooModel("cifar-resnet20", 10, (3, 32, 32)),
                       DataSpec("cifar10", str(tmp_path / "no-such-dir"), (3, 32, 32)), Candidate(),
                       Schedule(epochs=1), 0)
    with pytest.raises(UserError) as error:
        list(make_executor("ray", tmp_path, "cpu", progress=False).map([missing]))
    message = str(error.value)
    assert message.startswith("needs-cifar: ") and "no-such-dir" in message and "\n" not in message


def test_the_gate_search_is_a_job_a_worker_runs_with_the_local_result(cluster, tmp_path):
    source = ZooModel("cifar-resnet20", 10, TINY)
    torch.manual_seed(0)
    teacher = tmp_path / "teacher.pt"
    torch.save(Variants(source).build(Candidate()).state_dict(), teacher)
    setting = SettingChoice("delphi", "lan", None, None, 1, "online")
    budget = 0.6 * Pricer(Variants(source), setting).price(Candidate()).seconds("online")
    job = GateSearchJob(source=source, data=DataSpec(input_size=TINY), schedule=Schedule(batch_size=256), seed=0,
                        distillation=Distillation(), teacher_weights=str(teacher), options=GateOptions(gate_epochs=1),
                        setting=setting, objective="latency", budget=budget)
    local = next(make_executor("local", tmp_path / "local", "cpu", progress=False).map([job]))
    remote = next(make_executor("ray", tmp_path / "ray", "cpu", progress=False).map([job]))
    assert read_json(job_directory(tmp_path / "ray", job) / WORKER_FILE)["pid"] != os.getpid()
    assert remote.candidate == local.candidate and remote.history == local.history and remote.size <= budget
