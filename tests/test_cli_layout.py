"""How ``grader`` is composed: one module per verb in grader/commands, loaded on use,
and nothing below the commands imports them."""

from __future__ import annotations

import ast
import subprocess
import sys

import click
from testutil import REPO

from grader import cli as cli_module


def test_every_command_resolves_to_a_click_command() -> None:
    ctx = click.Context(cli_module.cli)
    names = cli_module.cli.list_commands(ctx)
    assert set(names) == set(cli_module.COMMANDS) | set(cli_module.SERVER_COMMANDS)
    for name in names:
        assert isinstance(cli_module.cli.get_command(ctx, name), click.Command), name
    assignments = cli_module.cli.get_command(ctx, "assignments")
    assert isinstance(assignments, click.Group)
    assert set(assignments.commands) == {"list", "show", "new", "import", "diff"}


def test_help_and_check_import_no_server_framework() -> None:
    code = (
        "import sys\n"
        "from grader.cli import cli\n"
        "for args in (['--help'], ['check', '--help'], ['inspect', '--help']):\n"
        "    try:\n"
        "        cli.main(args=args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'flask', 'sqlalchemy', 'celery', 'tensorflow', 'keras'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_nothing_below_the_commands_imports_them() -> None:
    offenders = []
    for path in sorted((REPO / "grader").rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[:2] == ("grader", "commands") or relative.parts[1:] in (
            ("cli.py",),
            ("__main__.py",),
        ):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            upward = [n for n in names if n.startswith(("grader.commands", "grader.cli"))]
            offenders += [f"{relative}: {n}" for n in upward]
    assert offenders == []
