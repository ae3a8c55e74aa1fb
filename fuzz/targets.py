"""What is fuzzed: each target is a loader (a `module:function` taking one path) and the kind of seed file
it is fed. Loaders are named by string so the parent process never imports torch; the worker imports
them all before it caps its memory."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    loader: str  # "module:function", called with the case file's path
    seeds: str  # subdirectory of the corpus holding this target's seed files (fuzz.corpus.BUILDERS)


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("torchscript", "fuzz.loaders:load_archive", "torchscript"),
    Target("export", "fuzz.loaders:load_archive", "export"),
    Target("state-dict", "fuzz.loaders:load_state_dict", "state-dict"),
    Target("protocol", "cost_models.protocols:load_protocol", "protocols"),
    Target("profile", "cost_models.profiles:load_profile", "profiles"),
    Target("network", "cost_models.networks:load_network", "networks"),
    Target("results", "pisim.report.results:read_results", "results"),
]}
