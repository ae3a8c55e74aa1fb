"""A search's state in --out cannot be lost: a corrupt state makes `--resume` refuse in one line and leaves every
file as it was, one search at a time holds --out, and temporary files of killed writes are swept.

One real search (the cheapest the CLI runs) builds the state; each case corrupts a copy of it the way a crash, a
full disk or a careless edit does, then resumes it.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from optimizer.cli import main
from optimizer.models import ZooModel
from optimizer.state import LOCK_FILE, check_cache, exclusive
from tests.conftest import run_cli

# Every schedule at one epoch, one candidate trained, no reshaping: about 20 s on 2 busy cores.
SEARCH = ["search", "--latency-budget", "2.5s", "--input-size", "3x8x8", "--epochs", "1", "--baseline-epochs", "1",
          "--criticality-epochs", "1", "--batch-size", "128", "--max-train", "1", "--alphas", "1", "--rhos", "1",
          "--no-progress", "--format", "json"]
MODEL = ZooModel("cifar-resnet20", 10, (3, 8, 8))  # what SEARCH trains: the default model on 10 digit classes


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "out"
    process = run_cli(*SEARCH, "--out", out, module="optimizer")
    assert process.returncode == 0, process.stderr
    assert json.loads((out / "frontier.json").read_text())["status"] == "complete"
    return out


@pytest.fixture
def state(finished, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


def snapshot(out: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory under `out`, hidden ones too."""
    return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}


# ---- corruptions: each takes a finished state and breaks one file, returning the file it broke ----------------

def job(out: Path, label: str) -> Path:
    """The job directory of `label`: baseline, a criticality variant, or the candidate that was trained."""
    if label == "candidate":
        trained = next(e for e in json.loads((out / "frontier.json").read_text())["candidates"]
                       if e["status"] == "trained")
        label = trained["id"].replace("_", "-")
    return next(out.glob(f"jobs/{label}-*"))


def located(out: Path, relative: str) -> Path:
    """`relative` is a path in --out, or `job:LABEL/FILE` for a file of a job directory."""
    if relative.startswith("job:"):
        label, name = relative.removeprefix("job:").split("/")
        return job(out, label) / name
    return out / relative


def rewrite_json(relative: str, change: Callable[[dict], object]) -> Callable[[Path], Path]:
    """`change` edits the document in place, or returns what replaces it."""
    def corrupt(out: Path) -> Path:
        path = located(out, relative)
        document = json.loads(path.read_text())
        replaced = change(document)
        path.write_text(json.dumps(document if replaced is None else replaced))
        return path
    return corrupt


def rewrite_bytes(relative: str, change: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def corrupt(out: Path) -> Path:
        path = located(out, relative)
        path.write_bytes(change(path.read_bytes()))
        return path
    return corrupt


def drop(key: str) -> Callable[[dict], None]:
    return lambda document: document.__delitem__(key)


def rewrite_weights(change: Callable[[dict], object]) -> Callable[[Path], Path]:
    def corrupt(out: Path) -> Path:
        path = job(out, "candidate") / "model.pt"
        weights = torch.load(path, weights_only=True)
        replaced = change(weights)
        torch.save(weights if replaced is None else replaced, path)
        return path
    return corrupt


def delete(relative: str) -> Callable[[Path], Path]:
    def corrupt(out: Path) -> Path:
        path = located(out, relative)
        path.unlink()
        return path
    return corrupt


def checkpoint(weights: dict[str, torch.Tensor], epoch: int = 1) -> dict:
    """What training.train saves after epoch 1 of the candidate, built the way it builds it."""
    model = MODEL.build()
    model.load_state_dict(weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    model(torch.zeros(2, 3, 8, 8)).sum().backward()
    optimizer.step()  # momentum buffers, one per parameter
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": torch.amp.GradScaler("cuda", enabled=False).state_dict(),
            "curve": [{"epoch": 1, "train_loss": 2.0, "test_accuracy": 0.25}]}


def in_flight(change: Callable[[dict], object]) -> Callable[[Path], Path]:
    """The candidate killed after its first epoch (a checkpoint, no result yet), its checkpoint then broken:
    `change` edits it in place or returns what replaces it (bytes: the file's content)."""
    def corrupt(out: Path) -> Path:
        directory = job(out, "candidate")
        state = checkpoint(torch.load(directory / "model.pt", weights_only=True))
        (directory / "result.json").unlink()
        (directory / "model.pt").unlink()
        replaced = change(state)
        if isinstance(replaced, bytes):
            (directory / "checkpoint.pt").write_bytes(replaced)
        else:
            torch.save(state if replaced is None else replaced, directory / "checkpoint.pt")
        return directory / "checkpoint.pt"
    return corrupt


def first_conv_widened(weights: dict) -> None:
    weights["conv1.weight"] = torch.zeros(32, 3, 3, 3)


CORRUPTIONS = {  # kind: (corrupt, words the message must contain besides the file's path)
    "frontier-empty": (rewrite_bytes("frontier.json", lambda b: b""), "empty"),
    "frontier-truncated": (rewrite_bytes("frontier.json", lambda b: b[:len(b) // 2]), "not valid JSON"),
    "frontier-not-text": (rewrite_bytes("frontier.json", lambda b: b"\xff\xfe\x00" + b), "not a text file"),
    "frontier-a-list": (rewrite_json("frontier.json", lambda d: [d]), "must be an object"),
    "frontier-other-schema": (rewrite_json("frontier.json", lambda d: d.update(schema="pisim.search/0")), "schema"),
    "frontier-no-baseline": (rewrite_json("frontier.json", drop("baseline")), "baseline"),
    "frontier-candidates-an-object": (rewrite_json("frontier.json", lambda d: d.update(candidates={})),
                                      "'candidates' must be a list"),
    "frontier-accuracy-a-string": (rewrite_json("frontier.json", lambda d: d["candidates"][0].update(
        accuracy="high")), "candidates[0].accuracy"),
    "frontier-unknown-status": (rewrite_json("frontier.json", lambda d: d["candidates"][0].update(status="done")),
                                "candidates[0].status"),
    "frontier-names-no-candidate": (rewrite_json("frontier.json", lambda d: d.update(frontier=["cull-S9"])),
                                    "cull-S9"),
    "frontier-search-a-string": (rewrite_json("frontier.json", lambda d: d.update(search="default")), "'search'"),
    "criticality-truncated": (rewrite_bytes("criticality.json", lambda b: b[:-20]), "not valid JSON"),
    "criticality-scores-an-object": (rewrite_json("criticality.json", lambda d: d.update(scores={"S1": 1})),
                                     "'scores' must be a list"),
    "criticality-score-lacks-gain": (rewrite_json("criticality.json", lambda d: drop("gain")(d["scores"][0])),
                                     "scores[0].gain"),
    "result-empty": (rewrite_bytes("job:baseline/result.json", lambda b: b""), "empty"),
    "result-a-list": (rewrite_json("job:baseline/result.json", lambda d: [d["accuracy"]]), "must be an object"),
    "result-accuracy-a-string": (rewrite_json("job:criticality-no-ReLUs/result.json",
                                              lambda d: d.update(accuracy="0.9")), "'accuracy' must be a number"),
    "result-curve-a-number": (rewrite_json("job:candidate/result.json", lambda d: d.update(curve=3)),
                              "'curve' must be a list"),
    "job spec not JSON": (rewrite_bytes("job:candidate/job.json", lambda b: b"{model: resnet}"), "not valid JSON"),
    "job-spec-missing": (delete("job:candidate/job.json"), "missing"),
    "weights-missing": (delete("job:candidate/model.pt"), "missing"),
    "weights-not-a-torch-file": (rewrite_bytes("job:baseline/model.pt", lambda b: b"weights\n"), "not a torch file"),
    "weights-truncated": (rewrite_bytes("job:candidate/model.pt", lambda b: b[:len(b) // 2]), "not a torch file"),
    "weights-pickle-an-object": (rewrite_weights(lambda w: {"conv1.weight": Path("conv1")}), "other than tensors"),
    "weights-renamed": (rewrite_weights(lambda w: {k.replace("conv1", "stem"): v for k, v in w.items()}),
                        "'conv1.weight' is missing"),
    "weights-reshaped": (rewrite_weights(first_conv_widened), "(32, 3, 3, 3)"),
    "checkpoint-not-a-torch-file": (in_flight(lambda c: b"\x00" * 64), "checkpoint.pt"),
    "checkpoint-lacks-optimizer": (in_flight(drop("optimizer")), "'optimizer'"),
    "checkpoint-reshaped": (in_flight(lambda c: first_conv_widened(c["model"])), "(32, 3, 3, 3)"),
    "checkpoint-epoch-beyond-its-curve": (in_flight(lambda c: c.update(epoch=3)), "epoch 3"),
    "checkpoint-optimizer-of-another-network": (in_flight(lambda c: c["optimizer"]["param_groups"][0].update(
        params=[0, 1, 2])), "optimizer state"),
}


def resume_in_process(out: Path, capsys) -> tuple[int, str]:
    code = main([*SEARCH, "--out", str(out), "--resume"])
    return code, capsys.readouterr().err


def resume_as_a_user(out: Path, capsys) -> tuple[int, str]:
    process = run_cli(*SEARCH, "--out", out, "--resume", module="optimizer")
    return process.returncode, process.stderr


@pytest.mark.parametrize("resume", [resume_in_process, pytest.param(resume_as_a_user, marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_state_is_refused_in_one_line_and_left_as_it_was(state, kind, resume, capsys):
    corrupt, words = CORRUPTIONS[kind]
    broken = corrupt(state)
    before = snapshot(state)
    code, stderr = resume(state, capsys)
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert str(broken) in stderr and words in stderr
    assert snapshot(state) == before


def test_the_checkpoint_the_corruptions_start_from_is_accepted(state):
    in_flight(lambda c: None)(state)
    check_cache(state / "jobs", MODEL)


def test_a_second_search_on_the_same_out_exits_2_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with exclusive(out):
        holder = json.loads((out / LOCK_FILE).read_text())
        process = run_cli(*SEARCH, "--out", out, module="optimizer")
    assert holder["pid"] == os.getpid() and holder["host"] and holder["started"]
    assert process.returncode == 2 and process.stderr.count("\n") == 1 and "Traceback" not in process.stderr
    assert f"PID {os.getpid()}" in process.stderr
    assert not out.exists()  # released, and the directory it made for the lock removed


def test_a_lock_left_by_a_killed_search_does_not_block(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom optimizer.state import exclusive\n"
                               "with exclusive(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(600)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    holder.kill()
    holder.wait(timeout=30)
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind, naming a dead process
    with exclusive(out):
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_sigint_releases_the_lock(tmp_path):
    out = tmp_path / "out"
    search = subprocess.Popen([sys.executable, "-m", "optimizer", *SEARCH, "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / LOCK_FILE).exists():
        assert search.poll() is None and time.monotonic() < deadline, "the search never took the lock"
        time.sleep(0.05)
    search.send_signal(signal.SIGINT)
    _, stderr = search.communicate(timeout=300)
    assert search.returncode == 130 and "Traceback" not in stderr
    assert not (out / LOCK_FILE).exists()
    with exclusive(out):
        pass


def test_resume_sweeps_temporary_files_of_killed_writes(state):
    stale = [state / ".frontier.json.k2j4x9.tmp", state / "models" / ".cull-S1.pt2.a8b7.tmp",
             job(state, "baseline") / ".checkpoint.pt.q1w2.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    kept = state / "notes.tmp"  # not one of atomic_writer's names
    kept.write_text("mine")
    process = run_cli(*SEARCH, "--out", state, "--resume", module="optimizer")
    assert process.returncode == 0, process.stderr
    assert not [p for p in stale if p.exists()] and kept.read_text() == "mine"
    assert json.loads((state / "frontier.json").read_text())["status"] == "complete"
    assert not (state / LOCK_FILE).exists()


def test_a_search_that_fails_before_it_starts_leaves_no_out(tmp_path):
    out = tmp_path / "out"
    # No such device on any machine: the baseline's job fails while it sets up, before anything is written,
    # so there is no "interrupted" search left to block the corrected command.
    process = run_cli(*SEARCH, "--out", out, "--device", "cuda:99", module="optimizer")
    assert process.returncode != 0
    assert not out.exists()
