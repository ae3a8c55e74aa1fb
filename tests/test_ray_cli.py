"""`optimizer search --executor ray` refuses what it cannot do in one line, exit code 2, before writing anything."""
from __future__ import annotations

import os

import pytest

from conftest import run_cli


def search(*args: str, env: dict[str, str] | None = None):
    return run_cli("search", "--latency-budget", "10s", *args, module="optimizer", env=env, timeout=120)


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path):
    # A `ray` that fails to import, first on the path: what an environment without the extra looks like.
    (tmp_path / "shadow" / "ray").mkdir(parents=True)
    (tmp_path / "shadow" / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "shadow"),
                                                                     os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "out"
    done = search("--executor", "ray", "--out", str(out), env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "optimizer: error: --executor ray needs Ray: pip install -e .[distributed]"]
    assert not out.exists()


@pytest.mark.parametrize("option", [["--ray-address", "auto"], ["--gpus-per-trial", "1"], ["--early-stop", "asha"]])
def test_ray_options_need_the_ray_executor(tmp_path, option):
    done = search(*option, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"optimizer: error: {option[0]}: only with --executor ray"]
    assert not (tmp_path / "out").exists()


def test_cuda_without_gpus_per_trial_is_refused_before_anything_is_written(tmp_path):
    pytest.importorskip("ray")
    done = search("--executor", "ray", "--device", "cuda", "--gpus-per-trial", "0", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["optimizer: error: --device cuda on Ray needs --gpus-per-trial above 0 "
                                                "(Ray hides GPUs from tasks that did not ask for one)"]
    assert not (tmp_path / "out").exists()


def test_help_documents_the_ray_options_and_early_stopping():
    done = run_cli("search", "--help", module="optimizer", timeout=60)
    assert done.returncode == 0
    for text in ("--executor", "--ray-address", "--gpus-per-trial", "--early-stop", "asha",
                 "successive halving", "pip install -e .[distributed]", "--cache-dir /shared"):
        assert text in done.stdout
