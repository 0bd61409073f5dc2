"""`grader check` as a student runs it: exit codes, the JSON contract, the text report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from models import conv_stack, save
from testutil import REPO

GRADER = [sys.executable, "-m", "grader"]
CONTRACT = {"status", "reason", "score", "max_score", "checks", "model", "metrics", "timings"}


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def right_and_wrong(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    return (
        save(conv_stack(), folder / "right.keras"),
        save(conv_stack(padding="same"), folder / "wrong.keras"),
    )


def test_passed_prints_expected_vs_yours_and_exits_0(right_and_wrong) -> None:
    result = run("check", right_and_wrong[0], "--assignment", "day096-conv2d")
    assert result.returncode == 0, result.stderr
    assert "Result: PASSED" in result.stdout and "Score: 100 / 100" in result.stdout
    assert "(None, 220, 220, 64)" in result.stdout and "18,496" in result.stdout


def test_failed_json_follows_the_contract_and_exits_1(right_and_wrong) -> None:
    result = run("check", right_and_wrong[1], "--assignment", "day096-conv2d", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= CONTRACT
    assert report["status"] == "failed" and report["reason"] is None
    for check in report["checks"]:
        assert {"name", "passed", "expected", "actual", "message"} <= set(check)
    assert {"total_params", "trainable_params", "layers"} <= set(report["model"])
    assert {"type", "output_shape", "params"} <= set(report["model"]["layers"][0])
    assert report["model"]["layers"][0]["output_shape"] == [None, 224, 224, 32]
    assert all(isinstance(v, float) for v in report["timings"].values())


def test_refused_file_exits_2_with_a_reason(tmp_path: Path) -> None:
    garbage = tmp_path / "model.keras"
    garbage.write_bytes(b"\x00not a model" * 100)
    result = run("check", garbage, "--assignment", "day096-conv2d", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["status"] == "not_gradable" and report["reason"]


@pytest.mark.parametrize(
    "args",
    [
        ("check", "missing.keras", "--assignment", "day096-conv2d"),
        ("check", "pyproject.toml"),
        ("check", "pyproject.toml", "--assignment", "no-such-assignment"),
        ("frobnicate",),
    ],
)
def test_usage_and_configuration_errors_exit_3(args) -> None:
    result = run(*args)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def test_missing_test_set_says_how_to_provide_it(right_and_wrong, tmp_path: Path) -> None:
    result = run("check", right_and_wrong[0], "-a", "day097-cifar10", "--data", tmp_path)
    assert result.returncode == 3
    assert "GRADER_CIFAR10" in result.stderr and "--data" in result.stderr


def test_assignments_list_and_show() -> None:
    listed = run("assignments", "list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "day096-conv2d", "day096-separable", "day096-strides-padding", "day097-cifar10",
    ]  # fmt: skip
    shown = run("assignments", "show", "day097-cifar10")
    assert shown.returncode == 0 and "min_accuracy: 0.7" in shown.stdout


def test_inspect_prints_the_layer_table_without_tensorflow(tmp_path: Path) -> None:
    """`grader inspect` is static: no TensorFlow or Keras import, and the same model
    object as `grader check --json`."""
    code = (
        "import json, sys\n"
        "from grader.cli import main\n"
        "try:\n"
        f"    main(['inspect', {str(REPO / 'tests/fixtures/day097_cifar10.keras')!r}, '--json'])\n"
        "except SystemExit as exc:\n"
        "    print(json.dumps({'code': exc.code, 'tf': 'tensorflow' in sys.modules,\n"
        "                      'keras': 'keras' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    *body, last = out.stdout.strip().splitlines()
    assert json.loads(last) == {"code": 0, "tf": False, "keras": False}
    payload = json.loads("\n".join(body))
    assert payload["status"] == "ok" and payload["reason"] is None
    assert payload["model"]["total_params"] == 121_642
    assert payload["model"]["layers"][2]["type"] == "Conv2D"


def test_inspect_refuses_a_lambda_with_exit_code_2(tmp_path: Path) -> None:
    import hostile

    result = run("inspect", hostile.lambda_keras(tmp_path))
    assert result.returncode == 2
    assert "NOT GRADABLE" in result.stdout and "Lambda" in result.stdout


def test_data_command_prepares_a_given_test_set(tmp_path: Path) -> None:
    """`grader data --from PATH` (offline) checks the set and says where it is kept."""
    import numpy as np
    from click.testing import CliRunner

    from grader.cli import cli as grader_cli

    given = tmp_path / "mini.npz"
    rng = np.random.default_rng(0)
    np.savez(given, x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y=np.arange(20) % 10)  # fmt: skip
    result = CliRunner().invoke(grader_cli, ["data", "--from", str(given)],
                                env={"XDG_CACHE_HOME": str(tmp_path / "cache")})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "20 images" in result.output and "1,000 per class" in result.output
    assert f"GRADER_CIFAR10={given}" in result.output and "kept as" in result.output
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"not the archive")
    result = CliRunner().invoke(grader_cli, ["data", "--from", str(bad)])
    assert result.exit_code != 0 and "not the official CIFAR-10 archive" in result.output
