"""The declared Python 3.10 works: every module parses as 3.10 syntax, and the TOML files load without `tomllib`
(3.11's standard library) through its backport `tomli`, as they do on a 3.10 interpreter."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OLDEST_PYTHON = (3, 10)  # pyproject.toml: requires-python = ">=3.10"
SOURCES = sorted(p for folder in ("pisim", "cost_models", "optimizer", "benchmarks", "tests")
                 for p in (ROOT / folder).rglob("*.py"))

# Run with tomllib made unimportable, as on 3.10: every shipped protocol, profile and network file, a calibrated
# profile's [implementation] table and the published references load, and the parser in use is tomli.
WITHOUT_TOMLLIB = """
import importlib.abc, json, sys

class NoTomllib(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tomllib":
            raise ModuleNotFoundError("No module named 'tomllib'", name=name)

sys.meta_path.insert(0, NoTomllib())

from cost_models.datafiles import shipped
from cost_models.networks import load_network
from cost_models.profiles import load_profile
from cost_models.protocols import load_protocol
from cost_models.validate import implementation_constants
from pisim.report.references import load_references
from pisim.tomlparser import tomllib

loaders = {"protocols": load_protocol, "profiles": load_profile, "networks": load_network}
loaded = {kind: sorted(load(name).name for name in shipped(kind)) for kind, load in loaders.items()}
print(json.dumps({"parser": tomllib.__name__, "tomllib imported": "tomllib" in sys.modules, "loaded": loaded,
                  "implementation": implementation_constants(sys.argv[1]),
                  "references": sorted(load_references())}))
"""


def test_every_module_parses_as_the_oldest_supported_python():
    assert ROOT / "pisim" / "tomlparser.py" in SOURCES and len(SOURCES) > 50  # the tree was found
    failures = []
    for path in SOURCES:
        try:
            ast.parse(path.read_text(), str(path), feature_version=OLDEST_PYTHON)
        except SyntaxError as error:
            failures.append(f"{path.relative_to(ROOT)}:{error.lineno}: {error.msg}")
    assert failures == []


def test_the_syntax_check_rejects_newer_syntax():
    """`except*` is 3.11 syntax: the check above would catch a module using it."""
    newer = "try:\n    pass\nexcept* ValueError:\n    pass\n"
    ast.parse(newer)  # the running interpreter (3.11 or later) accepts it
    with pytest.raises(SyntaxError):
        ast.parse(newer, feature_version=OLDEST_PYTHON)


def test_toml_files_load_with_tomli_when_tomllib_is_missing(tmp_path):
    from cost_models.datafiles import shipped

    profile = tmp_path / "calibrated.toml"
    profile.write_text('[implementation.relu_and_gates]\nvalue = 331\nunit = "AND gates"\nsource = "pisim calibrate"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TOMLLIB, str(profile)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["parser"] == "tomli" and not report["tomllib imported"]
    assert report["loaded"] == {kind: sorted(shipped(kind)) for kind in ("protocols", "profiles", "networks")}
    assert report["implementation"] == {"relu_and_gates": 331.0}
    assert {"deepreduce", "snl", "delphi"} <= set(report["references"])
