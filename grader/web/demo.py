"""The demo course behind ``grader serve --demo``: accounts, the shipped
assignments and three really graded submissions (a fourth, a trained CIFAR-10 model,
whenever the test set is here), so a first run shows working dashboard and feedback
pages, accuracy charts and a confusion matrix included, instead of empty tables.

Demo mode only. Passwords are random per installation (never in the code),
generated on the first seeding and kept in ``instance/demo-credentials.json``
(mode 0600) so later runs print the same logins. Seeding is idempotent: every
object is looked up before it is created, and the demo never changes an account
it did not create (one without a recorded password keeps its own).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from grader.errors import ConfigurationError
from grader.formats import sniff_head
from grader.service.context import settings, storage
from grader.service.db import db
from grader.service.executors import grade_inline
from grader.service.models import ACTIVE_STATES, ERROR, Assignment, Submission, User, audit
from grader.service.specs import import_spec_files
from grader.service.submissions import record_upload, requeue

CREDENTIALS_FILE = "demo-credentials.json"
DEFAULT_URL = "http://127.0.0.1:5000/"

# (username, role, display name)
ACCOUNTS = (
    ("instructor", "instructor", "Demo Instructor"),
    ("alice", "student", "Alice (demo)"),
    ("bob", "student", "Bob (demo)"),
)
CONV2D, SEPARABLE = "day096-conv2d", "day096-separable"
STRIDES = "day096-strides-padding"
CIFAR10 = "day097-cifar10"
#: The trained solution of day097-cifar10, relative to the repository (its spec's
#: ``reference``): graded in the demo whenever the CIFAR-10 test set is here, so the
#: first run shows accuracy charts and a confusion matrix.
TRAINED_CIFAR10 = Path("tests/fixtures/day097_cifar10.keras")


@dataclass(frozen=True)
class DemoSubmissionSpec:
    """One demo upload: who, where, which model, and the verdict it is meant to get.

    The file name is the idempotency marker: a submission by ``username`` on
    ``assignment`` with this name means it was already seeded.
    """

    username: str
    assignment: str
    filename: str
    model: str  # key of _BUILDERS, or of _FILES (a file shipped with the repository)
    expected: str  # Result.status it is meant to get
    what: str
    needs_test_set: bool = False  # seeded only once the CIFAR-10 test set is here


DEMO_SUBMISSIONS = (
    DemoSubmissionSpec(
        "alice", CONV2D, "demo-conv2d-solution.keras", "conv2d", "passed",
        "the sample solution (examples/day096_conv2d.py)",
    ),
    DemoSubmissionSpec(
        "bob", CONV2D, "demo-conv2d-same-padding.keras", "conv2d_same", "failed",
        'layer 2 uses padding="same": the layer check fails',
    ),
    DemoSubmissionSpec(
        "bob", SEPARABLE, "demo-separable-lambda.keras", "lambda", "not_gradable",
        "a Lambda layer: refused as not gradable, no attempt used",
    ),
    DemoSubmissionSpec(
        "alice", CIFAR10, "demo-cifar10-trained.keras", "cifar10_trained", "passed",
        "a trained CNN on the 10,000 CIFAR-10 test images: per-class accuracy and the "
        "confusion matrix", needs_test_set=True,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    name: str
    # None: the account existed before the demo (or its password was changed
    # since), so the demo does not know it and leaves it alone.
    password: str | None


@dataclass(frozen=True)
class DemoSubmission:
    id: int
    username: str
    assignment: str
    state: str
    status: str | None
    score: float | None
    max_score: float | None
    what: str


@dataclass
class DemoInfo:
    """What the demo course holds, for the terminal; ``created`` is empty on a re-run."""

    accounts: list[DemoAccount]
    assignments: list[tuple[str, str]]  # (id, title)
    submissions: list[DemoSubmission]
    credentials_file: Path
    created: list[str] = field(default_factory=list)

    def account(self, username: str) -> DemoAccount:
        return next(a for a in self.accounts if a.username == username)

    def banner(self, url: str = DEFAULT_URL) -> str:
        """The text printed when the demo server starts: where to go, how to log in,
        and what to try first."""
        base = url.rstrip("/") + "/"
        titles = dict(self.assignments)
        rule = "-" * 72
        lines = [
            rule,
            "Keras grader: DEMO COURSE (demo mode only, not for a real course)",
            "",
            f"Open {base} in your browser and log in with:",
            "",
        ]
        for acc in self.accounts:
            password = acc.password or (
                f"(existing account, password unchanged; reset it with "
                f"`grader create-user {acc.username} --role {acc.role} --random`)"
            )
            lines.append(f"  {acc.role:<11} {acc.username:<11} password: {password}")
        lines += [
            "",
            f"  (generated for this installation, kept in {self.credentials_file})",
        ]
        if self.submissions:
            lines += ["", "Already graded:"]
            for sub in self.submissions:
                verdict = (sub.status or sub.state).replace("_", " ")
                if sub.score is not None and sub.status != "not_gradable":
                    verdict += f" {sub.score:g}/{sub.max_score:g}"
                lines.append(
                    f"  {sub.username:<6} {sub.assignment:<17} {verdict:<15} "
                    f"{base}submissions/{sub.id}"
                )
                lines.append(f"  {'':<6} {sub.what}")
        conv2d = titles.get(CONV2D, CONV2D)
        separable = titles.get(SEPARABLE, SEPARABLE)
        lines += [
            "",
            "Try first:",
            f'  1. Log in as student alice, open "{conv2d}" and read the feedback',
            "     on her passing model.",
            "  2. Build a model of your own:  python examples/day096_separable.py",
            f'     then, as alice, open "{separable}" and upload',
            "     day096_separable.keras; its feedback page shows the grade when done.",
            f'     The same for "{titles.get(STRIDES, STRIDES)}" (strides, padding,',
            "     depth_multiplier):  python examples/day096_strides_padding.py",
            "  3. Log in as bob to see a failed layer check and a refused file.",
            f"  4. Log in as instructor: dashboard, gradebook and regrades at {base}instructor/",
        ]
        cifar = next((s for s in self.submissions if s.assignment == CIFAR10), None)
        if cifar is not None:
            lines += [
                "  5. alice's trained CIFAR-10 model: per-class accuracy and the confusion",
                f"     matrix at {base}submissions/{cifar.id}; the dashboard charts the class.",
            ]
        lines.append(rule)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.banner()


Echo = Callable[[str], None]


def seed_demo(app: Flask, echo: Echo | None = print) -> DemoInfo:
    """Create the demo course in ``app``'s (already migrated) database, or find it.

    Safe to call on every start: a second call creates nothing and returns the
    same logins. Real models are built with Keras and graded synchronously the
    first time (10-30 s), so the pages have real results when the server is up;
    ``echo`` receives the progress lines (None: silent).
    """
    say: Echo = echo or (lambda _line: None)
    with app.app_context():
        created: list[str] = []
        accounts = _ensure_accounts(Path(app.instance_path), created)
        assignments = _ensure_assignments(created)
        submissions = _ensure_submissions(accounts, say, created)
        if created:
            audit(None, "demo_seeded", created=created)
            db.session.commit()
        return DemoInfo(
            accounts=accounts,
            assignments=[(a.id, a.title) for a in assignments],
            submissions=submissions,
            credentials_file=Path(app.instance_path) / CREDENTIALS_FILE,
            created=created,
        )


# --- Accounts and credentials ------------------------------------------------


def _read_credentials(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    path.chmod(0o600)  # tighten a file copied or restored with looser permissions
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, dict):
        return {}
    return {str(k): str(v) for k, v in accounts.items() if isinstance(v, str) and v}


def _write_credentials(path: Path, passwords: dict[str, str]) -> None:
    """Atomically, and never readable by others even for a moment (mkstemp is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "note": "Demo course logins (grader serve --demo). Demo mode only.",
        "accounts": passwords,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".demo-credentials-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ensure_accounts(instance: Path, created: list[str]) -> list[DemoAccount]:
    path = instance / CREDENTIALS_FILE
    stored = _read_credentials(path)
    users = {
        u.username: u
        for u in db.session.scalars(select(User).where(User.username.in_([a[0] for a in ACCOUNTS])))
    }
    passwords = dict(stored)
    for username, _role, _name in ACCOUNTS:
        if username not in users and username not in passwords:
            passwords[username] = secrets.token_urlsafe(12)
    if passwords != stored:
        # Written before the accounts are committed: a crash in between leaves
        # a file whose passwords the next run uses for the accounts it creates.
        _write_credentials(path, passwords)

    out = []
    for username, role, name in ACCOUNTS:
        user = users.get(username)
        password: str | None = passwords.get(username)
        if user is None:
            user = User(username=username, role=role, name=name)
            user.set_password(password or "")
            db.session.add(user)
            created.append(f"user {username}")
        elif password is None or not user.check_password(password):
            password = None  # not ours, or changed since: leave it alone
        out.append(DemoAccount(username, user.role, user.name or username, password))
    db.session.commit()
    return out


# --- Assignments -------------------------------------------------------------


def _ensure_assignments(created: list[str]) -> list[Assignment]:
    """Import the shipped assignments folder (unchanged specs are left as they are)."""

    folder = settings().assignments_dir
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise ConfigurationError(
            f"The demo needs the shipped assignments, but {folder} has no *.yaml specs "
            "(set GRADER_ASSIGNMENTS_DIR)."
        )
    for assignment_id, outcome in import_spec_files(files):
        if outcome != "unchanged":
            created.append(f"assignment {assignment_id} ({outcome})")
    ids = [f.stem for f in files]
    return list(
        db.session.scalars(select(Assignment).where(Assignment.id.in_(ids)).order_by(Assignment.id))
    )


# --- Submissions -------------------------------------------------------------


def _ensure_submissions(
    accounts: list[DemoAccount], say: Echo, created: list[str]
) -> list[DemoSubmission]:

    ours = {a.username for a in accounts if a.password is not None}
    todo: list[tuple[DemoSubmissionSpec, Submission | None]] = []
    for item in DEMO_SUBMISSIONS:
        if item.username not in ours:
            continue  # never add demo uploads to an account the demo did not create
        found = _find(item)
        if found is None and item.needs_test_set and not _can_evaluate(item):
            continue  # added by a later run, once the test set (and the file) are here
        todo.append((item, found))

    missing = [item for item, sub in todo if sub is None]
    if missing:
        say("demo: building the demo models with Keras (first run only) ...")
        started = time.monotonic()
        files = _model_bytes({item.model for item in missing})
        say(f"demo: models built in {time.monotonic() - started:.0f} s")

    out = []
    for item, sub in todo:
        if sub is None:
            sub = _store(item, files[item.model])
            created.append(f"submission {item.username}/{item.assignment}/{item.model}")
        elif sub.state in (*ACTIVE_STATES, ERROR):
            # Left unfinished or hit an infrastructure error last time: try again.
            requeue(sub, None)
            db.session.commit()
        if sub.state in ACTIVE_STATES:
            say(f"demo: grading {item.username}'s {item.filename} for {item.assignment} ...")
            started = time.monotonic()
            grade_inline(sub.id)
            db.session.expire_all()
            sub = db.session.get(Submission, sub.id)
            assert sub is not None
            say(f"demo:   {sub.state} in {time.monotonic() - started:.0f} s")
        result = sub.result
        out.append(
            DemoSubmission(
                id=sub.id,
                username=item.username,
                assignment=item.assignment,
                state=sub.state,
                status=result.status if result else None,
                score=result.score if result else None,
                max_score=result.max_score if result else None,
                what=item.what,
            )
        )
    return out


def _find(item: DemoSubmissionSpec) -> Submission | None:
    return db.session.scalar(
        select(Submission)
        .join(User, Submission.user_id == User.id)
        .where(
            User.username == item.username,
            Submission.assignment_id == item.assignment,
            Submission.original_filename == item.filename,
        )
        .order_by(Submission.id)
        .limit(1)
    )


def _can_evaluate(item: DemoSubmissionSpec) -> bool:
    """The CIFAR-10 test set is here and so is the trained file (a checkout has it)."""
    from grader.data import test_set_available

    return test_set_available(settings().cifar10) and _shipped_file(item.model) is not None


def _store(item: DemoSubmissionSpec, content: bytes) -> Submission:
    """Store the file and a queued submission, the way an upload would."""

    user = db.session.scalar(select(User).where(User.username == item.username))
    assignment = db.session.get(Assignment, item.assignment)
    if user is None or assignment is None or assignment.current_version is None:
        raise ConfigurationError(f"demo: {item.username} or {item.assignment} is missing")
    sha, size = storage().put(content)
    return record_upload(user, assignment, sha, size, item.filename, sniff_head(content[:8]))


# --- Models (Keras is imported only here, and only when a model is missing) ---


def _conv2d(keras: Any, second_padding: str = "valid") -> Any:
    """Same as examples/day096_conv2d.build() (examples/ is not in the package);
    ``second_padding="same"`` is the failing variant: 222x222x64 instead of 220x220x64."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            layers.Conv2D(32, (3, 3), strides=1, padding="valid"),
            layers.Conv2D(64, (3, 3), strides=1, padding=second_padding),
        ]
    )


def _lambda(keras: Any) -> Any:
    """A harmless Lambda; any Lambda is refused because it could run arbitrary code."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3)),
            layers.Lambda(lambda x: x * 2),
            layers.SeparableConv2D(32, (3, 3), padding="valid"),
            layers.SeparableConv2D(64, (3, 3), padding="valid"),
        ]
    )


_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "conv2d": _conv2d,
    "conv2d_same": functools.partial(_conv2d, second_padding="same"),
    "lambda": _lambda,
}


#: Demo models that are files shipped with the repository rather than built here.
_FILES: dict[str, Path] = {"cifar10_trained": TRAINED_CIFAR10}


def _shipped_file(name: str) -> Path | None:
    """A shipped model file: beside the assignments folder's repository, else this
    checkout's (None in an installation without the repository's tests folder)."""
    relative = _FILES.get(name)
    if relative is None:
        return None
    roots = (settings().assignments_dir.resolve().parent, Path(__file__).resolve().parents[2])
    return next((root / relative for root in roots if (root / relative).is_file()), None)


def _model_bytes(names: set[str]) -> dict[str, bytes]:
    """Build and save the named models (or read the shipped ones); returns the .keras
    file contents. Keras is imported only when a model has to be built."""
    out = {}
    for name in names & _FILES.keys():
        path = _shipped_file(name)
        if path is None:
            raise ConfigurationError(f"demo: {_FILES[name]} is missing")
        out[name] = path.read_bytes()
    built = names - _FILES.keys()
    if not built:
        return out
    import keras

    with tempfile.TemporaryDirectory(prefix="grader-demo-") as tmp:
        for name in sorted(built):
            path = Path(tmp) / f"{name}.keras"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _BUILDERS[name](keras).save(path)
            out[name] = path.read_bytes()
    return out
