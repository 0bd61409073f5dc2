"""Authoring: an assignment spec from a reference solution, checked against it.

``generate`` reads the reference model as data (the static inspection, no TensorFlow on
the trusted side) and writes the spec an instructor would: the exact layer list or a
layer-and-parameter budget, the course's rubric and policy defaults. ``verify`` grades
the reference against a spec (the generated one, or one the instructor edited), so a
spec its own solution fails is never published. ``dump_spec`` writes YAML in the format
of the shipped ``assignments/*.yaml``.
"""

from grader.authoring.generate import (
    CHECKABLE,
    MODES,
    AuthoringError,
    Draft,
    Options,
    generate,
    spec_data,
)
from grader.authoring.verify import Verification, verify
from grader.authoring.yamlout import dump_spec

__all__ = [
    "CHECKABLE",
    "MODES",
    "AuthoringError",
    "Draft",
    "Options",
    "Verification",
    "dump_spec",
    "generate",
    "spec_data",
    "verify",
]
