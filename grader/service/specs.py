"""Assignment specs in the database: immutable versions, the current one, and import."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import func, select

from grader.errors import ConfigurationError
from grader.service.db import db
from grader.service.models import Assignment, SpecVersion, User, audit
from grader.spec import AssignmentSpec, parse_spec


def spec_of(version: SpecVersion) -> AssignmentSpec:
    return parse_spec(version.yaml_text, f"{version.assignment_id} v{version.version}")


def current_spec(assignment: Assignment) -> AssignmentSpec:
    assert assignment.current_version is not None
    return spec_of(assignment.current_version)


def import_spec(text: str, source: str, actor: User | None = None) -> tuple[Assignment, str]:
    """Add or update an assignment from spec YAML; returns (assignment, what happened).

    Raises ConfigurationError with a readable message for an invalid spec.
    """
    spec = parse_spec(text, source)
    sha = hashlib.sha256(text.encode()).hexdigest()
    assignment = db.session.get(Assignment, spec.id)
    if assignment is None:
        assignment = Assignment(id=spec.id, title=spec.title)
        db.session.add(assignment)
        db.session.flush()
        outcome = "created"
    elif assignment.current_version is not None and assignment.current_version.sha256 == sha:
        return assignment, "unchanged"
    else:
        outcome = "updated"
    last = db.session.scalar(
        select(func.max(SpecVersion.version)).where(SpecVersion.assignment_id == spec.id)
    )
    version = SpecVersion(
        assignment_id=spec.id,
        version=(last or 0) + 1,
        yaml_text=text,
        sha256=sha,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(version)
    db.session.flush()
    assignment.current_version = version
    assignment.title = spec.title
    audit(actor, f"assignment_{outcome}", assignment_id=spec.id, version=version.version)
    db.session.commit()
    return assignment, outcome


def import_spec_files(paths: list[Path], actor: User | None = None) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assignment, outcome = import_spec(text, str(path), actor)
        if assignment.id != path.stem:
            raise ConfigurationError(f"{path}: id '{assignment.id}' does not match the file name")
        out.append((assignment.id, outcome))
    return out
