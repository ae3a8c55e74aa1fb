"""The one clock behind every calibration and validation figure: CPU seconds of this process.

Profiles price compute, the work a core does. On a shared machine wall time also counts the
time other processes hold the core, which varies from run to run by more than the tolerances
we check; CPU time does not (all measured work runs on one thread, so it equals the wall time
the same work takes on an idle core).
"""
import time


def cpu_seconds() -> float:
    return time.process_time()
