"""The package's layers are enforced by import-linter (pyproject.toml); this keeps its
list of core modules complete, so a new core module cannot import the web, the queue
or the service without the contract noticing."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The packages above the core, each with a contract of its own (the layers).
ABOVE_THE_CORE = {"cli", "commands", "web", "queue", "service", "__main__", "__init__"}


def test_every_core_module_is_in_the_core_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    core = next(c for c in contracts if c["name"].startswith("The grading core"))
    listed = set(core["source_modules"])
    modules = {
        f"grader.{p.stem}"
        for p in (ROOT / "grader").iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
        and p.stem not in ABOVE_THE_CORE
    }
    assert modules - listed == set(), "core modules missing from the import contract"
    assert listed - modules == set(), "the contract names modules that do not exist"
