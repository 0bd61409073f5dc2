"""Database administration: create or upgrade the schema, users, the roster, assignment specs."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from grader.commands.shared import web_app


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@click.command("init-db")
def init_db() -> None:
    """Create the database (or bring it up to date) with Alembic migrations."""
    from grader.service.migrate import upgrade

    app = web_app()
    upgrade(app)
    click.echo(f"Database ready: {_safe_url(app.config['SQLALCHEMY_DATABASE_URI'])}")


@click.command("upgrade")
def upgrade_db() -> None:
    """Apply pending database migrations."""
    from grader.service.migrate import upgrade

    upgrade(web_app())
    click.echo("Database upgraded.")


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["student", "instructor"]), default="student")
@click.option("--name", default="")
@click.option("--password", help="Prompted for if omitted (use --random for a generated one).")
@click.option("--random", "random_password", is_flag=True, help="Generate and print a password.")
def create_user(
    username: str, role: str, name: str, password: str | None, random_password: bool
) -> None:
    """Create a user or reset an existing user's password and role."""
    from sqlalchemy import select

    from grader.service.db import db
    from grader.service.models import User

    if random_password:
        password = secrets.token_urlsafe(12)
    elif password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    app = web_app()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            user = User(username=username)
            db.session.add(user)
        user.role = role
        user.name = name or user.name or ""
        user.set_password(password or "")
        db.session.commit()
    click.echo(f"{'Created' if created else 'Updated'} {role} {username}.")
    if random_password:
        click.echo(f"Password: {password}")


@click.command("import-roster")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--base-url",
    help="The server's address in the one-time links (default: GRADER_PUBLIC_URL, else "
    "GRADER_SERVER).",
)
def import_roster_cmd(csv_file: Path, base_url: str | None) -> None:
    """Create student accounts from a CSV (username[,name,email,password])."""
    from grader.web.gradebook import RosterError, import_roster

    app = web_app()
    settings = app.config["GRADER_SETTINGS"]
    base_url = base_url or settings.public_url or settings.server
    with app.app_context():
        try:
            results = import_roster(csv_file.read_text(encoding="utf-8-sig"))
        except RosterError as exc:
            raise click.ClickException(str(exc)) from None
    for r in results:
        extra = ""
        if "token" in r:
            extra = f"  {base_url.rstrip('/')}/welcome/{r['token']}"
        elif "password" in r:
            extra = "  (password from roster)"
        click.echo(f"{r['action']:8} {r['username']}{extra}")


@click.command("import")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def import_assignments(paths: tuple[Path, ...]) -> None:
    """Add or update assignments from spec files (default: the assignments folder)."""
    from grader.errors import ConfigurationError
    from grader.service.specs import import_spec_files
    from grader.settings import get_settings

    files: list[Path] = []
    for path in paths or (get_settings().assignments_dir,):
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    app = web_app()
    with app.app_context():
        try:
            for assignment_id, outcome in import_spec_files(files):
                click.echo(f"{outcome:9} {assignment_id}")
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None
