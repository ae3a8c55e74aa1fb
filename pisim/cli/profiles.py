"""`pisim profiles`: the shipped hardware profiles and what each per-primitive constant rests on."""
from __future__ import annotations

import argparse

from pisim.cli.datafiles import register_listing


def register(sub: argparse._SubParsersAction) -> None:
    from cost_models.profiles import load_profile

    register_listing(sub, "profiles", "profiles", "hardware profiles", load_profile,
                     lambda profile: [f"schema pisim.profile/1 (docs/architecture.md); file: {profile.path.name}"])
