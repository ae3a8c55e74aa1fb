"""Fuzz the loaders for a bounded time and count what happened.

    python -m fuzz.run --minutes 10 [--target NAME ...] [--seed N] [--failures DIR]

Each case is a seed file, mutated (fuzz.mutate), written alone into a fresh directory and handed to its
loader in a worker process (fuzz.worker), which is reused case after case and restarted after a crash,
a timeout or too much memory. The first case of each seed file is the file unmutated, which the loader
must accept. Counted per target: cases, accepted, refused with a one-line UserError, and the failures:
tracebacks (any other exception), bad refusals (a UserError that is not one line), crashes (the worker
died: a signal or an exit), timeouts, memory (resident memory over the limit), leftovers (files a case
left in its directory, the worker's working directory or its TMPDIR). Any failure exits 1, with the
failing inputs and a report for each under --failures. The same --seed makes the same cases.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.mutate import mutate
from fuzz.targets import TARGETS, Target
from fuzz.worker import MEMORY_ENV

OUTCOMES = ("accepted", "refused", "traceback", "bad-refusal", "crash", "timeout", "memory")
FAILURES = ("traceback", "bad-refusal", "crash", "timeout", "memory", "leftover")
CASE_TIMEOUT_S = 30.0  # a tiny model or data file loads in well under a second; a case past this hangs
STARTUP_TIMEOUT_S = 300.0  # importing torch on a busy two-core machine
MEMORY_MB = 2048  # resident memory a worker may reach; also the address space a case may add
POLL_S = 0.05  # how often a running case's memory is checked
EXAMPLES_KEPT = 3  # failing inputs saved per distinct failure: enough to reproduce, not thousands of files
LOG_TAIL = 2000  # characters of the worker's stderr kept in a crash report


@dataclass
class Finding:
    """One distinct failure: an outcome with a signature (exception and where, or signal), and its cases."""

    number: int
    target: str
    outcome: str
    signature: str
    cases: int = 0
    examples: list[Path] = field(default_factory=list)
    detail: str = ""


@dataclass
class Summary:
    seed: int
    seconds: float = 0.0
    counts: dict[str, Counter] = field(default_factory=dict)  # target -> outcome (and "cases", "leftover")
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    seeds_refused: list[str] = field(default_factory=list)
    peak_rss_bytes: int = 0
    failures_dir: Path | None = None

    def total(self, key: str) -> int:
        return sum(c[key] for c in self.counts.values())

    @property
    def failed(self) -> bool:
        return any(self.total(key) for key in FAILURES)


class Worker:
    """One worker process, its own working directory (which is also its TMPDIR) and its stderr log."""

    def __init__(self, root: Path, loaders: list[str], memory_bytes: int):
        self.home = root / "worker"
        self.home.mkdir(exist_ok=True)
        self.log = root / "worker.log"
        env = dict(os.environ, TMPDIR=str(self.home), PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                   PYTHONHASHSEED="0", **{MEMORY_ENV: str(memory_bytes)})
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "fuzz.worker", *loaders], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, cwd=self.home, env=env,
                                            start_new_session=True)
        self.buffer = b""
        self.peak_rss_bytes = 0
        ready = self._reply(STARTUP_TIMEOUT_S, memory_limit=None)
        if "ready" not in ready:
            raise RuntimeError(f"fuzz worker did not start ({ready.get('detail')}): {self.log_tail()}")
        self.baseline = _listing(self.home)

    def run(self, loader: str, path: Path, timeout_s: float, memory_limit: int) -> dict:
        request = json.dumps({"loader": loader, "path": str(path), "dir": str(path.parent)}) + "\n"
        try:
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died after its last reply: _reply reports the crash
        return self._reply(timeout_s, memory_limit)

    def _reply(self, timeout_s: float, memory_limit: int | None) -> dict:
        deadline = time.monotonic() + timeout_s
        out = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            if select.select([out], [], [], POLL_S)[0]:
                chunk = os.read(out, 1 << 16)
                if chunk:
                    self.buffer += chunk
                    continue
            rss = self._poll_rss()
            if not self.alive():
                return self._died()
            if memory_limit is not None and rss > memory_limit:
                self.kill()
                return {"outcome": "memory", "signature": f"over {memory_limit >> 20} MB",
                        "detail": f"resident memory {rss >> 20} MB, over the {memory_limit >> 20} MB limit"}
            if time.monotonic() > deadline:
                self.kill()
                return {"outcome": "timeout", "signature": f"over {timeout_s:g} s",
                        "detail": f"no reply within {timeout_s:g} s"}
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _died(self) -> dict:
        self.process.wait()
        code = self.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return {"outcome": "crash", "signature": how, "detail": f"worker died: {how}", "traceback": self.log_tail()}

    def _poll_rss(self) -> int:
        """The worker's resident memory now; its peak (VmHWM) is kept for the summary."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        fields = {line.split(":")[0]: line.split()[1:2] for line in status.splitlines()}
        rss, peak = (int((fields.get(key) or ["0"])[0]) * 1024 for key in ("VmRSS", "VmHWM"))
        self.peak_rss_bytes = max(self.peak_rss_bytes, peak)
        return rss

    def leftovers(self) -> list[str]:
        return sorted(set(_listing(self.home)) - set(self.baseline))

    def clear_leftovers(self) -> None:
        for name in reversed(self.leftovers()):  # deepest first, so each directory is empty when its turn comes
            path = self.home / name
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-LOG_TAIL:] if self.log.exists() else ""

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        self._poll_rss()
        if self.alive():
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.stdout.close()


def _listing(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*")]


def seed_files(corpus: Path, target: Target) -> list[Path]:
    files = sorted(p for p in (corpus / target.seeds).iterdir() if p.is_file())
    if not files:
        raise RuntimeError(f"no seed files for target {target.name} in {corpus / target.seeds}")
    return files


def build_corpus(corpus: Path, kinds: list[str]) -> None:
    """In a child process, so the parent never imports torch and its memory is counted with the workers'."""
    subprocess.run([sys.executable, "-m", "fuzz.corpus", str(corpus), *kinds], check=True,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))


def fuzz(targets: list[Target], seconds: float, seed: int = 0, max_cases: int | None = None,
         failures_dir: Path = Path("fuzz-failures"), corpus: Path | None = None,
         case_timeout_s: float = CASE_TIMEOUT_S, memory_mb: int = MEMORY_MB) -> Summary:
    summary = Summary(seed=seed, counts={t.name: Counter() for t in targets})
    root = Path(tempfile.mkdtemp(prefix="pisim-fuzz-"))
    memory = memory_mb << 20
    worker = None
    try:
        corpus = corpus or root / "corpus"
        build_corpus(corpus, sorted({t.seeds for t in targets}))
        seeds = {t.name: [(p.name, p.read_bytes()) for p in seed_files(corpus, t)] for t in targets}
        plain = [(t, name, data) for t in targets for name, data in seeds[t.name]]  # each seed once, unmutated
        loaders = sorted({t.loader for t in targets})
        worker = Worker(root, loaders, memory)
        started = time.monotonic()
        index = 0
        while time.monotonic() - started < seconds and (max_cases is None or index < max_cases):
            rng = random.Random(f"{seed}/{index}")
            if index < len(plain):
                target, name, data = plain[index]
                how = "unmutated seed"
            else:
                target = targets[index % len(targets)]
                name, original = rng.choice(seeds[target.name])
                data, how = mutate(original, name, rng)
            case_dir = root / "cases" / str(index)
            case_dir.mkdir(parents=True)
            path = case_dir / name
            path.write_bytes(data)
            reply = worker.run(target.loader, path, case_timeout_s, memory)
            in_case = [str(p.relative_to(case_dir)) for p in case_dir.rglob("*") if p != path]
            left = sorted({*in_case, *(f"worker/{p}" for p in worker.leftovers())})
            counts = summary.counts[target.name]
            counts["cases"] += 1
            counts[reply["outcome"]] += 1
            if index < len(plain) and reply["outcome"] != "accepted":
                summary.seeds_refused.append(f"{target.name} {name}: {reply['outcome']} {reply.get('detail', '')}")
            if reply["outcome"] in FAILURES:
                _record(summary, failures_dir, target, reply, name, data, how, index)
            if left:
                counts["leftover"] += 1
                _record(summary, failures_dir, target,
                        {"outcome": "leftover", "signature": _where(bool(in_case), bool(worker.leftovers())),
                         "detail": f"left behind: {left}"},
                        name, data, how, index)
                worker.clear_leftovers()  # so the next case is judged on what it leaves itself
            shutil.rmtree(case_dir)
            if not worker.alive():
                summary.peak_rss_bytes = max(summary.peak_rss_bytes, worker.peak_rss_bytes)
                worker = Worker(root, loaders, memory)
            index += 1
        summary.seconds = time.monotonic() - started
    finally:
        if worker is not None:
            worker.close()
            summary.peak_rss_bytes = max(summary.peak_rss_bytes, worker.peak_rss_bytes)
        shutil.rmtree(root, ignore_errors=True)
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    summary.peak_rss_bytes = max(summary.peak_rss_bytes, children_peak)
    return summary


def _where(in_case: bool, in_worker: bool) -> str:
    """Where a case left files: the signature of a leftover (the names themselves may be random)."""
    return ", ".join(where for where, found in (("in the case directory", in_case),
                                                ("in the worker's directory", in_worker)) if found)


def _record(summary: Summary, failures_dir: Path, target: Target, reply: dict, name: str, data: bytes,
            how: str, index: int) -> None:
    key = (target.name, reply["outcome"], reply.get("signature", ""))
    finding = summary.findings.setdefault(key, Finding(len(summary.findings) + 1, *key, detail=reply.get("detail", "")))
    finding.cases += 1
    if len(finding.examples) >= EXAMPLES_KEPT:
        return
    folder = failures_dir / f"{finding.number:03d}-{target.name}-{reply['outcome']}-{len(finding.examples) + 1}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    (folder / "report.txt").write_text(
        f"target: {target.name} (loader {target.loader})\ncase: {index} of --seed {summary.seed}\n"
        f"mutation: {how}\noutcome: {reply['outcome']}\nsignature: {reply.get('signature', '')}\n"
        f"detail: {reply.get('detail', '')}\n"
        f"reproduce: python -m fuzz.worker --replay {target.loader} {folder / name}\n\n{reply.get('traceback', '')}")
    finding.examples.append(folder)
    summary.failures_dir = failures_dir


def format_summary(summary: Summary) -> str:
    columns = ("cases", *OUTCOMES, "leftover")
    width = max(len(name) for name in [*summary.counts, "total"])
    lines = [f"fuzz: {summary.total('cases')} cases in {summary.seconds:.0f} s (--seed {summary.seed}), "
             f"peak RSS {summary.peak_rss_bytes / 2**20:.0f} MB",
             f"{'target':<{width}}  " + "  ".join(f"{c:>11}" for c in columns)]
    for name, counts in [*summary.counts.items(), ("total", Counter({c: summary.total(c) for c in columns}))]:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[c]:>11}" for c in columns))
    lines.extend(f"warning: a seed was not accepted, so the corpus does not start from valid files: {s}"
                 for s in summary.seeds_refused)
    if summary.findings:
        lines.append(f"distinct failures ({len(summary.findings)}), inputs and reports under {summary.failures_dir}:")
        for f in sorted(summary.findings.values(), key=lambda f: (f.target, f.outcome, -f.cases)):
            lines.append(f"  {f.target} {f.outcome}: {f.signature} x{f.cases} - {f.detail[:160]}"
                         f" (e.g. {f.examples[0] if f.examples else '-'})")
    lines.append("FAILED: tracebacks, crashes, timeouts, memory or leftovers above" if summary.failed
                 else "ok: no tracebacks, crashes, timeouts, memory overruns or leftovers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n", 1)[0],
                                     epilog="Targets: " + ", ".join(f"{t.name} ({t.loader})" for t in TARGETS.values()))
    parser.add_argument("--minutes", type=float, default=1.0, help="fuzzing time, corpus and start-up not counted (default 1)")
    parser.add_argument("--cases", type=int, help="stop after this many cases (with --seed: the same cases every run)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS),
                        help="fuzz only this loader (repeatable; default all, in turn)")
    parser.add_argument("--seed", type=int, default=0, help="which cases to make (default 0)")
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"),
                        help="where failing inputs and their reports go (default ./fuzz-failures)")
    parser.add_argument("--corpus", type=Path, help="seed corpus directory to reuse (made there if missing)")
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT_S, help=f"seconds per case (default {CASE_TIMEOUT_S:g})")
    parser.add_argument("--memory-mb", type=int, default=MEMORY_MB, help=f"resident memory per worker (default {MEMORY_MB})")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or (args.cases is not None and args.cases < 1):
        parser.error("--minutes and --cases must be positive")
    targets = [TARGETS[name] for name in (args.target or TARGETS)]
    summary = fuzz(targets, args.minutes * 60, args.seed, args.cases, args.failures, args.corpus,
                   args.case_timeout, args.memory_mb)
    print(format_summary(summary))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
