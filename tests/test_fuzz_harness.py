"""The fuzz harness finds what it is for: loaders planted with a bug are fed the mutated shipped network
files, and each bug shows up in its count, with the failing input saved; the run goes on after a crash.
The slow test fuzzes the real loaders and expects no failure at all."""
from __future__ import annotations

import ctypes
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from fuzz.run import FAILURES, fuzz, main
from fuzz.targets import TARGETS, Target
from pisim.errors import UserError

CASES = 40  # enough mutations to trigger each planted bug several times, at the same seed each run


def fires(path: Path) -> bool:
    """The planted bugs fire on about every other mutation (those of odd length), whatever the shipped files hold;
    the planted loaders refuse every other case, as a sound loader would."""
    return len(path.read_bytes()) % 2 == 1


def planted_key_error(path: Path) -> None:
    if fires(path):
        raise KeyError("rtt")
    raise UserError(f"{path}: refused")


def planted_segfault(path: Path) -> None:
    if fires(path):
        ctypes.string_at(0)
    raise UserError(f"{path}: refused")


def planted_hang(path: Path) -> None:
    if fires(path):
        time.sleep(3600)
    raise UserError(f"{path}: refused")


def planted_litter(path: Path) -> None:
    Path("stray.txt").write_text("left in the working directory")
    tempfile.mkstemp(prefix="stray-")  # left in TMPDIR
    raise UserError(f"{path}: refused")


def planted_memory_hog(path: Path) -> None:
    if fires(path):
        # Lift the address-space cap, so only the resident-memory watch can stop it.
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        hoard = []
        while True:
            hoard.append(bytearray(32 << 20))  # zero-filled pages, resident at once
            time.sleep(0.01)
    raise UserError(f"{path}: two\nlines")


def planted(function) -> Target:
    return Target(function.__name__, f"{__name__}:{function.__name__}", "networks")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The shipped network files as the only seeds, without building the model seeds."""
    from cost_models.datafiles import shipped  # here, not at the top: each worker imports this module, light

    folder = tmp_path / "corpus" / "networks"
    folder.mkdir(parents=True)
    for name, path in shipped("networks").items():
        shutil.copyfile(path, folder / f"{name}.toml")
    return folder.parent


def run_planted(function, corpus: Path, tmp_path: Path, cases: int = CASES, **options):
    return fuzz([planted(function)], seconds=600, seed=0, max_cases=cases, failures_dir=tmp_path / "failures",
                corpus=corpus, **options)


def only_failure(summary, outcome: str):
    counts = summary.counts[next(iter(summary.counts))]
    assert counts[outcome] >= 1, counts
    assert all(counts[f] == 0 for f in FAILURES if f != outcome), counts
    return counts


def test_an_exception_other_than_user_error_is_a_traceback_with_its_input_saved(corpus, tmp_path):
    summary = run_planted(planted_key_error, corpus, tmp_path)
    counts = only_failure(summary, "traceback")
    assert counts["cases"] == CASES and counts["refused"] == CASES - counts["traceback"]
    assert summary.failed
    [finding] = summary.findings.values()
    assert finding.signature.startswith("KeyError at ") and finding.cases == counts["traceback"]
    report = (finding.examples[0] / "report.txt").read_text()
    assert "KeyError: 'rtt'" in report and "fuzz.worker --replay" in report
    [saved] = [p for p in finding.examples[0].iterdir() if p.suffix == ".toml"]
    assert fires(saved)  # the input that fails, to reproduce with


def test_a_segfault_is_a_crash_and_the_run_goes_on_with_a_new_worker(corpus, tmp_path):
    summary = run_planted(planted_segfault, corpus, tmp_path, cases=12)
    counts = only_failure(summary, "crash")
    assert counts["cases"] == 12 and counts["refused"] == 12 - counts["crash"]
    assert {f.signature for f in summary.findings.values()} == {"signal SIGSEGV"}


def test_a_hang_is_a_timeout(corpus, tmp_path):
    summary = run_planted(planted_hang, corpus, tmp_path, cases=8, case_timeout_s=0.5)
    counts = only_failure(summary, "timeout")
    assert counts["refused"] == 8 - counts["timeout"]


def test_files_left_in_the_working_directory_or_tmpdir_are_leftovers(corpus, tmp_path):
    summary = run_planted(planted_litter, corpus, tmp_path, cases=5)
    counts = only_failure(summary, "leftover")
    assert counts["leftover"] == 5  # each case is judged alone: what one leaves is cleared before the next
    [finding] = summary.findings.values()
    assert finding.signature == "in the case directory, in the worker's directory"
    assert "stray.txt" in finding.detail and "worker/stray-" in finding.detail


def test_memory_over_the_limit_is_stopped_and_a_multi_line_refusal_is_counted(corpus, tmp_path):
    summary = run_planted(planted_memory_hog, corpus, tmp_path, cases=8, memory_mb=256)
    counts = summary.counts["planted_memory_hog"]
    assert counts["memory"] >= 1 and counts["bad-refusal"] == 8 - counts["memory"], counts
    assert summary.failed


def test_the_same_seed_makes_the_same_cases(corpus, tmp_path):
    first = run_planted(planted_key_error, corpus, tmp_path / "a", cases=25)
    second = run_planted(planted_key_error, corpus, tmp_path / "b", cases=25)
    assert first.counts == second.counts
    assert [f.examples[0].name for f in first.findings.values()] == [f.examples[0].name for f in second.findings.values()]
    assert [(f.examples[0] / "report.txt").read_text().splitlines()[1:3] for f in first.findings.values()] == \
        [(f.examples[0] / "report.txt").read_text().splitlines()[1:3] for f in second.findings.values()]


def test_the_command_line_refuses_a_bad_budget_and_an_unknown_target(capsys):
    for argv in (["--minutes", "0"], ["--target", "nonsense"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_real_loaders_survive_a_minute_of_fuzzing(tmp_path):
    summary = fuzz(list(TARGETS.values()), seconds=60, seed=0, failures_dir=tmp_path / "failures")
    assert not summary.seeds_refused
    assert summary.total("cases") > 100
    assert {f: summary.total(f) for f in FAILURES} == dict.fromkeys(FAILURES, 0), \
        "\n".join(f"{f.target} {f.outcome}: {f.signature} x{f.cases}: {f.detail}" for f in summary.findings.values())
    assert summary.peak_rss_bytes < 2 << 30
