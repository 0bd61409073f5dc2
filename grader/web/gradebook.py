"""Gradebook rows, CSV export and roster import: shared by the pages and the CLI."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

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

    def key(self, column: str) -> Any:
        value = {
            "student": self.user.username.lower(),
            "best": self.standing.best,
            "latest": self.standing.latest,
            "counted": self.standing.counted,
            "attempts": self.standing.attempts,
            "late": self.standing.late,
            "flagged": self.standing.flagged,
            "status": self.status,
        }[column]
        return (value is None, value if value is not None else 0)


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
    if status:
        rows = [r for r in rows if r.status == status]
    if sort not in SORT_KEYS:
        sort = "student"
    rows.sort(key=lambda r: r.key(sort), reverse=descending)
    return rows


def gradebook_csv(assignment: Assignment) -> str:
    header = ["username", "name", "counted", "best", "latest", "max_score", "attempts", "late",
              "integrity_flags", "status"]  # fmt: skip

    def cells(row: Row) -> list[Any]:
        s = row.standing
        return [row.user.username, row.user.name, s.counted, s.best, s.latest, s.max_score,
                s.attempts, "yes" if s.late else "no", s.flagged, row.status]  # fmt: skip

    return csv_text(header, (cells(row) for row in gradebook(assignment)))


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
        record = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
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
        elif outcome["action"] == "created":
            outcome["token"] = user.new_setup_token()
        results.append(outcome)
    audit(actor, "roster_import", count=len(results))
    db.session.commit()
    return results
