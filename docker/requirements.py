"""Print the project's dependencies from pyproject.toml as a requirements file.

Used by the Dockerfiles so the dependency layer depends on pyproject.toml only (the
code is copied afterwards and installed with ``--no-deps``), and so the worker image
can leave out ``tensorflow-cpu`` in favour of its own TensorFlow build.

    python requirements.py pyproject.toml [--exclude NAME[,NAME...]]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def dependency_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject")
    parser.add_argument("--exclude", default="", help="comma-separated names to leave out")
    args = parser.parse_args(argv)
    excluded = {dependency_name(n) for n in args.exclude.split(",") if n.strip()}
    with open(args.pyproject, "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    for dep in deps:
        if dependency_name(dep) not in excluded:
            sys.stdout.write(dep + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
