"""The ``grader`` command line: one click group composed of :mod:`grader.commands`.

Exit codes of ``grader check``: 0 passed, 1 failed, 2 not gradable, 3 usage
or configuration error. Commands return their exit code; ``main`` maps
errors that are the operator's (bad flags, bad spec, no data, no sandbox) to 3.

Commands are loaded on first use: ``grader check`` imports neither Flask, nor
SQLAlchemy, nor Celery, and the server's commands are listed only where the web
extras (``pip install keras-grader[web]``) are installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from grader.errors import ConfigurationError, SandboxUnavailable

EXIT_USAGE = 3

#: Command name -> ``module:attribute`` in :mod:`grader.commands`.
COMMANDS = {
    "check": "check:check",
    "inspect": "check:inspect_command",
    "grade": "batch:grade",
    "assignments": "assignments:assignments",
    "data": "data:data",
    "submit": "client:submit",
    "status": "client:status",
}
#: The server's commands: only with the web extras.
SERVER_COMMANDS = {
    "init-db": "admin:init_db",
    "upgrade": "admin:upgrade_db",
    "create-user": "admin:create_user",
    "import-roster": "admin:import_roster_cmd",
    "regrade": "grading:regrade_cmd",
    "export-grades": "grading:export_grades",
    "serve": "serve:serve",
    "worker": "serve:worker",
    "queue": "serve:queue_cmd",
}
#: Sub-commands the web extras add to a group: ``grader assignments import``.
SERVER_SUBCOMMANDS = {
    "assignments": {
        "import": "admin:import_assignments",
        "diff": "assignments:assignments_diff",
    }
}


def web_extras() -> bool:
    """Whether the server's dependencies are installed (looked up, not imported)."""
    return importlib.util.find_spec("flask") is not None


def _load(target: str) -> click.Command:
    module, attribute = target.split(":")
    command = getattr(importlib.import_module(f"grader.commands.{module}"), attribute)
    assert isinstance(command, click.Command), target
    return command


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def _table(self) -> dict[str, str]:
        return {**COMMANDS, **SERVER_COMMANDS} if web_extras() else dict(COMMANDS)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._table()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            target = self._table().get(cmd_name)
            if target is None:
                return None
            command = _load(target)
            if isinstance(command, click.Group) and web_extras():
                for name, sub in SERVER_SUBCOMMANDS.get(cmd_name, {}).items():
                    command.add_command(_load(sub), name)
            self.add_command(command, cmd_name)
        return self.commands[cmd_name]


@click.group(cls=LazyGroup)
@click.version_option(package_name="keras-grader")
def cli() -> None:
    """Grade Keras CNN homework: self-check, batch grading, the web service."""


def main(argv: list[str] | None = None) -> None:
    """Entry point; turns operator errors into exit code 3 with a one-line message."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE
    except (ConfigurationError, SandboxUnavailable) as exc:
        click.echo(f"Error: {exc}", err=True)
        code = EXIT_USAGE
    sys.exit(code if isinstance(code, int) else 0)
