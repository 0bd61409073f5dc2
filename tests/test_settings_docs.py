"""The GRADER_* settings, ``.env.example`` and the README's configuration table name
the same variables, and the grader reads no GRADER_* variable outside the settings."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from testutil import REPO

from grader.errors import ConfigurationError
from grader.settings import Settings, env_name, get_settings

SETTINGS = {env_name(name) for name in Settings.model_fields}
NAME = re.compile(r"\bGRADER_[A-Z0-9_]*[A-Z0-9]\b")
#: Flask config keys of the web app that look like variables but are not read from the environment.
APP_CONFIG_KEYS = {"GRADER_SETTINGS", "GRADER_WORKERS"}


def readme_table() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n## Configuration\n" in text, "README.md has no Configuration section"
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(GRADER_[A-Z0-9_]+)` \|", section, re.MULTILINE))


def env_example() -> set[str]:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^(GRADER_[A-Z0-9_]+)=", text, re.MULTILINE))


def compose_variables() -> set[str]:
    """GRADER_* variables that only docker compose reads (ports, images, limits, ...)."""
    files = [REPO / "docker-compose.yml", *sorted((REPO / "docker").glob("compose.*.yml"))]
    return {m for f in files for m in re.findall(r"\$\{(GRADER_[A-Z0-9_]+)", f.read_text())}


def test_every_setting_has_a_one_line_meaning() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and "\n" not in field.description, name


def test_readme_table_lists_exactly_the_settings() -> None:
    table = readme_table()
    assert sorted(SETTINGS - table) == [], "settings missing from the README table"
    assert sorted(table - SETTINGS) == [], "README table lists variables that are not settings"


def test_env_example_lists_every_setting_and_nothing_stale() -> None:
    listed = env_example()
    assert sorted(SETTINGS - listed) == [], "settings missing from .env.example"
    stale = listed - SETTINGS - compose_variables()
    assert sorted(stale) == [], ".env.example lists variables neither settings nor compose read"


def test_the_package_names_no_grader_variable_that_is_not_a_setting() -> None:
    """A new GRADER_* variable read ad hoc (os.environ) would show up here."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "grader").rglob("*.py")):
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(REPO)))
    unknown = {n: where for n, where in found.items() if n not in SETTINGS | APP_CONFIG_KEYS}
    assert unknown == {}


def test_the_client_options_read_the_settings_variables() -> None:
    from grader.commands import client
    from grader.queue import gpu

    pairs = [
        (client.SERVER_ENV, env_name("server")),
        (client.TOKEN_ENV, env_name("token")),
        (client.DEFAULT_SERVER, Settings.model_fields["server"].default),
        (gpu.GPU_ENV, env_name("worker_gpu")),
        (gpu.PREWARM_ENV, env_name("prewarm")),
    ]
    assert all(used == declared for used, declared in pairs), pairs


def test_empty_means_unset_and_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRADER_S3_ENDPOINT", "")
    monkeypatch.setenv("GRADER_WARM", "0")
    monkeypatch.setenv("GRADER_WORKER_GPU", "1")
    settings = get_settings()
    assert settings.s3_endpoint is None and settings.warm is False and settings.worker_gpu == 1
    monkeypatch.setenv("GRADER_MAX_PARAMS", "many")
    with pytest.raises(ConfigurationError, match="GRADER_MAX_PARAMS"):
        get_settings()


def test_a_bad_setting_is_one_line_and_exit_code_3() -> None:
    env = {"PATH": "/usr/bin:/bin", "GRADER_MAX_PARAMS": "many"}
    out = subprocess.run(
        [sys.executable, "-m", "grader", "assignments", "list"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert out.returncode == 3
    assert "GRADER_MAX_PARAMS" in out.stderr and "Traceback" not in out.stderr
