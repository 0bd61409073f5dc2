"""Gradebook rows, CSV export and roster import: shared by the pages and the CLI."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from grader import units
from grader.checks import max_score
from grader.csvout import csv_text
from grader.service.db import db
from grader.service.models import Assignment, Submission, User, audit
from grader.service.policy import Standing, standing_from
from grader.service.specs import current_spec

SORT_KEYS = ("student", "best", "latest", "counted", "attempts", "late", "flagged", "status")


@dataclass
class Row:
    user: User
    standing: Standing

    @property
    def status(self) -> str:
        return self.standing.status

    @property
    def days_late(self) -> int | None:
        """Days late of the submission that counts (None without one)."""
        sub = self.standing.counted_submission
        return sub.late_days if sub is not None else None

    def key(self, column: str) -> Any:
        """The sort value of ``column``; None where the student has none."""
        return {
            "student": self.user.username.lower(),
            "best": self.standing.best,
            "latest": self.standing.latest,
            "counted": self.standing.counted,
            "attempts": self.standing.attempts,
            "late": self.days_late,
            "flagged": self.standing.flagged,
            "status": self.standing.label,
        }[column]


def gradebook(
    assignment: Assignment,
    sort: str = "student",
    descending: bool = False,
    query: str = "",
    status: str = "",
) -> list[Row]:
    spec = current_spec(assignment)
    students = db.session.scalars(
        select(User).where(User.role == "student").order_by(User.username)
    ).all()
    subs = db.session.scalars(
        select(Submission)
        .where(Submission.assignment_id == assignment.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    by_user: dict[int, list[Submission]] = {}
    for sub in subs:
        by_user.setdefault(sub.user_id, []).append(sub)
    rows = [Row(user, standing_from(by_user.get(user.id, []), spec)) for user in students]
    if query:
        q = query.lower()
        rows = [r for r in rows if q in r.user.username.lower() or q in r.user.name.lower()]
    if status:  # the pages' word ("passed"), or the state's name ("graded")
        rows = [r for r in rows if status in (r.standing.label, r.status)]
    if sort not in SORT_KEYS:
        sort = "student"
    # Students without a value go last whichever way the column is sorted.
    valued = [r for r in rows if r.key(sort) is not None]
    valued.sort(key=lambda r: r.key(sort), reverse=descending)
    return valued + [r for r in rows if r.key(sort) is None]


#: The export's columns: what an instructor grades from, in the pages' words and rounding.
CSV_HEADER = ["username", "name", "email", "status", "counted", "max_score", "raw",
              "penalty_percent", "days_late", "override", "override_reason", "attempts",
              "best", "latest", "integrity_flags", "counted_submission"]  # fmt: skip


def _score(value: float | None) -> str | None:
    return None if value is None else units.score(value)


def csv_cells(row: Row) -> list[Any]:
    """One student's line: the counted submission's raw score, penalty, days late and
    override, scores rounded as on the pages (90.48 -> 90.5), status as the pages say it."""
    s = row.standing
    sub = s.counted_submission
    return [
        row.user.username, row.user.name, row.user.email, s.label,
        _score(s.counted), _score(s.max_score),
        _score(sub.raw_score) if sub else None,
        f"{sub.penalty * 100:.1f}" if sub else None,
        row.days_late,
        _score(sub.override_score) if sub else None,
        sub.override_reason if sub and sub.override_score is not None else None,
        s.attempts, _score(s.best), _score(s.latest), s.flagged,
        sub.id if sub else None,
    ]  # fmt: skip


def gradebook_csv(assignment: Assignment) -> str:
    return csv_text(CSV_HEADER, (csv_cells(row) for row in gradebook(assignment)))


def links_csv(results: list[dict[str, str]]) -> str:
    """The one-time links of a roster import or a re-issue, for a mail merge."""
    rows = [(r["username"], r.get("name", ""), r.get("email", ""), r["link"])
            for r in results if r.get("link")]  # fmt: skip
    return csv_text(["username", "name", "email", "link"], rows)


def reissue_links(users: list[User], actor: User | None = None) -> list[dict[str, str]]:
    """New one-time set-up links for students who have not set a password yet (an old
    link stops working); students who have are skipped."""
    results = []
    for user in users:
        if user.password_hash or user.role != "student":
            continue
        results.append({"username": user.username, "name": user.name or "",
                        "email": user.email or "", "action": "new link",
                        "token": user.new_setup_token()})  # fmt: skip
    audit(actor, "roster_links", count=len(results), users=[r["username"] for r in results])
    db.session.commit()
    return results


def course_csv(assignments: list[Assignment]) -> str:
    """The LMS layout: one line per student, one column per assignment holding the
    counted score (rounded as on the pages; empty without one), for a gradebook import."""
    books = [{row.user.id: row for row in gradebook(item)} for item in assignments]
    students = db.session.scalars(
        select(User).where(User.role == "student").order_by(User.username)
    ).all()
    header = ["username", "name", "email"] + [
        f"{item.id} (/{units.score(max_score(current_spec(item)))})" for item in assignments
    ]
    rows = (
        [user.username, user.name, user.email]
        + [_score(book[user.id].standing.counted) if user.id in book else None for book in books]
        for user in students
    )
    return csv_text(header, rows)


_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")


class RosterError(ValueError):
    pass


def import_roster(text: str, actor: User | None = None) -> list[dict[str, str]]:
    """Create or update student accounts from CSV (username[,name][,email][,password]).

    New accounts without a password get a one-time set-up token, returned once.
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "username" not in fields:
        raise RosterError("The roster needs a 'username' column.")
    results = []
    for line, raw in enumerate(reader, start=2):
        # Cells beyond the header come as a list under the key None: not a column.
        record = {
            (k or "").strip().lower(): (v or "").strip()
            for k, v in raw.items()
            if k is not None and not isinstance(v, list)
        }
        username = record.get("username", "")
        if not _USERNAME.match(username):
            raise RosterError(f"line {line}: invalid username {username!r}")
        user = db.session.scalar(select(User).where(User.username == username))
        outcome: dict[str, str] = {"username": username}
        if user is None:
            user = User(username=username, role="student")
            db.session.add(user)
            outcome["action"] = "created"
        else:
            outcome["action"] = "updated"
        user.name = record.get("name", "") or user.name or ""
        user.email = record.get("email") or user.email
        if record.get("password"):
            user.set_password(record["password"])
            outcome["password"] = "set from roster"
        elif outcome["action"] == "created" or not user.password_hash:
            outcome["token"] = user.new_setup_token()  # a new link for the not yet active
        outcome.update(name=user.name, email=user.email or "")
        results.append(outcome)
    audit(actor, "roster_import", count=len(results))
    db.session.commit()
    return results
