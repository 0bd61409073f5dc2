"""The pages' Jinja filters and globals: every number, percentage, shape, score, size and
time on a page goes through grader.units, so pages and CLI text read alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader import units
from grader.service.models import utcnow
from grader.service.policy import course_zone, deadline_utc, late_penalty, state_label
from grader.spec import AssignmentSpec

_markdown = MarkdownIt("js-default")  # raw HTML disabled: descriptions are rendered safely


def when(value: dt.datetime | None) -> str:
    """An instant in the course's zone, the zone named: "2026-12-01 09:09 CET"."""
    return units.when(value, course_zone()) if value else units.DASH


def relative(value: dt.datetime | None) -> str:
    """ "in 3 h", "2 days ago": ``value`` against now."""
    return units.relative(value, utcnow()) if value else ""


def deadline_of(spec: AssignmentSpec) -> dt.datetime | None:
    """The instant the spec's deadline enforces (aware UTC), or None."""
    return deadline_utc(spec)


def overdue(spec: AssignmentSpec) -> bool:
    """Whether the spec's deadline has passed."""
    deadline = deadline_utc(spec)
    return deadline is not None and deadline < utcnow().replace(tzinfo=dt.UTC)


def late_now(spec: AssignmentSpec) -> tuple[int, float]:
    """(days late, penalty) of an upload made now."""
    return late_penalty(spec, utcnow())


def audit_detail(detail: dict[str, Any] | None) -> str:
    """An audit entry's detail in words: "85 → 99 · reason: regraded by hand"."""
    detail = detail or {}
    parts = []
    if "old" in detail or "new" in detail:
        parts.append(f"{units.score(detail.get('old'))} → {units.score(detail.get('new'))}")
    for key, value in detail.items():
        if key not in ("old", "new"):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key.replace('_', ' ')}: {shown}")
    return " · ".join(parts)


FILTERS = {
    "score": units.score,
    "score_of": units.score_of,
    "num": units.number,
    "pct": units.pct,
    "shape": units.shape,
    "size": units.size,
    "seconds": units.seconds,
    "phase": units.phase,
    "check_value": units.check_value,
    "days_late": units.days_late,
    "state_label": state_label,
    "dt": when,
    "relative": relative,
    "audit_detail": audit_detail,
}


def register(app: Flask) -> None:
    @app.template_filter("markdown")
    def markdown_filter(text: str | None) -> Markup:
        return Markup(_markdown.render(text or ""))

    for name, function in FILTERS.items():
        app.add_template_filter(function, name)

    @app.context_processor
    def time_helpers() -> dict[str, Any]:
        return {
            "deadline_of": deadline_of,
            "late_now": late_now,
            "overdue": overdue,
            "timing_rows": units.timing_rows,
            "course_zone": course_zone,
        }
