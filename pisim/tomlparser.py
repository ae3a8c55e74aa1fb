"""The one TOML parser every loader uses: the standard library's `tomllib` from Python 3.11 on, and on 3.10
its backport `tomli` (the same API; pyproject installs it there), so the declared Python 3.10 works."""
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 has no tomllib
    import tomli as tomllib

__all__ = ["tomllib"]
