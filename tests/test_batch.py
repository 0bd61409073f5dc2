"""`grader grade`: a folder of submissions in, a gradebook CSV and JSON reports out.

The sandboxed tests grade real Keras files (right, wrong, hostile, slow) through the
real pipeline; the bookkeeping tests (naming, errors, operator errors) swap the
grading function for a fake so they run in milliseconds.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import default_marker, garbage_file, lambda_keras
from models import cifar_cnn, conv_stack, memoriser, save
from testutil import ASSIGNMENTS, shipped_spec

from grader.batch import CSV_COLUMNS, collect_submissions, compile_student_pattern, grade_directory
from grader.errors import ConfigurationError, SandboxUnavailable
from grader.pipeline import file_sha256
from grader.report import Report
from grader.sandbox import sandbox_status
from grader.settings import Settings
from grader.spec import find_spec

_OK, _WHY = sandbox_status()
needs_sandbox = pytest.mark.skipif(not _OK, reason=f"no sandbox here: {_WHY}")
GRADER = [sys.executable, "-m", "grader"]


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return {row["student"]: row for row in reader}


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file per student, named the way an LMS export names them."""
    folder = tmp_path_factory.mktemp("submissions")
    save(conv_stack(), folder / "alice_day096.keras")  # the right answer
    save(conv_stack(padding="same"), folder / "bob_day096.keras")  # wrong padding
    lambda_keras(folder).rename(folder / "mallory_day096.keras")  # code in the file
    garbage_file(folder).rename(folder / "trudy_day096.keras")  # not a model at all
    (folder / "notes.txt").write_text("not a submission")
    return folder


@needs_sandbox
def test_batch_grades_each_file_and_resumes(submissions: Path, tmp_path: Path) -> None:
    spec = shipped_spec("day096-conv2d")
    out = tmp_path / "grades.csv"
    seen = []
    summary = grade_directory(
        submissions, spec, out, student_pattern=r"(?P<student>[^_.]+)", jobs=2,
        on_result=seen.append,
    )  # fmt: skip

    rows = read_csv(out)
    assert {s: r["status"] for s, r in rows.items()} == {
        "alice": "passed",
        "bob": "failed",
        "mallory": "not_gradable",
        "trudy": "not_gradable",
    }
    assert rows["alice"]["score"] == rows["alice"]["max_score"] == "100.0"
    assert rows["alice"]["total_params"] == "19392" and rows["alice"]["reason"] == ""
    assert rows["bob"]["reason"]  # which checks failed, in words
    assert "Lambda" in rows["mallory"]["reason"] and rows["trudy"]["reason"]
    assert rows["alice"]["file"] == "alice_day096.keras"
    assert not default_marker(submissions).exists()  # the Lambda never ran
    assert summary.counts == {"passed": 1, "failed": 1, "not_gradable": 2}
    assert summary.graded == 4 and summary.skipped == 0 and len(seen) == 4
    assert any("notes.txt" in w for w in summary.warnings)

    reports = tmp_path / "grades_reports"
    for student in rows:
        report = json.loads((reports / f"{student}.json").read_text())
        assert report["student"] == student and len(report["file_sha256"]) == 64
        Report.model_validate(report)  # still the documented report, plus two fields
    mtimes = {p.name: p.stat().st_mtime_ns for p in reports.iterdir()}

    # Re-run: nothing changed, nothing is regraded, the CSV is the same.
    started = time.perf_counter()
    again = grade_directory(submissions, spec, out, student_pattern=r"(?P<student>[^_.]+)")
    assert time.perf_counter() - started < 5  # no sandbox was started
    assert again.skipped == 4 and again.graded == 0
    assert {p.name: p.stat().st_mtime_ns for p in reports.iterdir()} == mtimes
    assert read_csv(out) == rows

    # A changed file is regraded on its own; --force regrades everything.
    bob = submissions / "bob_day096.keras"
    original = bob.read_bytes()
    try:
        save(conv_stack(), bob)
        changed = grade_directory(submissions, spec, out, student_pattern=r"(?P<student>[^_.]+)")
        assert changed.graded == 1 and read_csv(out)["bob"]["status"] == "passed"
    finally:
        bob.write_bytes(original)
    forced = grade_directory(
        submissions, spec, out, student_pattern=r"(?P<student>[^_.]+)", force=True
    )
    assert forced.graded == 4 and forced.skipped == 0
    assert all((reports / name).stat().st_mtime_ns > mtime for name, mtime in mtimes.items())
    assert read_csv(out)["bob"]["status"] == "failed"


def _slow_model():
    """Legal layers, honest work, far too slow: 512×512 maps, 128 channels, 10 layers deep.

    About 400 GMAC per image (80 TMAC for the 200 test images): minutes even on a big
    CPU, while being cut off costs only the time limit.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            layers.UpSampling2D(16),
            *[layers.Conv2D(128, 3, padding="same") for _ in range(10)],
            layers.SeparableConv2D(10, 3, padding="same"),
            layers.GlobalAveragePooling2D(),
        ]
    )


@needs_sandbox
@pytest.mark.slow
def test_a_file_that_runs_too_long_is_cut_off_and_the_batch_goes_on(tmp_path: Path) -> None:
    limit = 45  # covers TensorFlow's import in the sandbox (~10 s) on a busy machine
    spec_path = tmp_path / "slow-cifar.yaml"
    text = (ASSIGNMENTS / "day097-cifar10.yaml").read_text()
    spec_path.write_text(
        text.replace("id: day097-cifar10", "id: slow-cifar").replace(
            "time_limit_seconds: 300", f"time_limit_seconds: {limit}"
        )
    )
    spec = find_spec(str(spec_path), ASSIGNMENTS)
    assert spec.evaluation is not None and spec.evaluation.time_limit_seconds == limit

    rng = np.random.default_rng(0)
    data = tmp_path / "synthetic.npz"
    np.savez(data, x=rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 10, 200).astype(np.uint8))  # fmt: skip
    folder = tmp_path / "subs"
    folder.mkdir()
    save(_slow_model(), folder / "slowpoke.keras")
    save(cifar_cnn(seed=1), folder / "quick.keras")

    started = time.perf_counter()
    summary = grade_directory(
        folder, spec, tmp_path / "grades.csv", data=data, jobs=2,
        # small batches: slow, not out of memory; the static compute cap lifted so that the
        # wall-clock limit is what stops it
        settings=Settings(predict_batch_size=2, max_flops=10**13),
    )  # fmt: skip
    elapsed = time.perf_counter() - started

    rows = read_csv(tmp_path / "grades.csv")
    assert rows["slowpoke"]["status"] == "not_gradable"
    assert f"longer than the limit of {limit} s" in rows["slowpoke"]["reason"]
    assert rows["quick"]["status"] == "failed"  # random weights: graded, below 70 %
    assert float(rows["quick"]["accuracy"]) < 0.5
    assert elapsed < limit + 60, elapsed
    assert summary.counts["not_gradable"] == 1


@needs_sandbox
def test_cli_grade_writes_the_csv_and_exits_0(submissions: Path, tmp_path: Path) -> None:
    out = tmp_path / "book" / "grades.csv"
    reports = tmp_path / "json"
    result = subprocess.run(
        [*GRADER, "grade", str(submissions), "-a", "day096-conv2d", "--out", str(out),
         "--reports-dir", str(reports), "--student-pattern", "^([a-z]+)_", "--jobs", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert rows["alice"]["status"] == "passed" and rows["bob"]["status"] == "failed"
    assert rows["trudy"]["status"] == "not_gradable"
    assert sorted(p.name for p in reports.iterdir()) == [
        "alice.json", "bob.json", "mallory.json", "trudy.json",
    ]  # fmt: skip
    assert "1 passed, 1 failed, 2 not gradable, 0 errors" in result.stdout
    assert "[4/4]" in result.stderr  # not a terminal: one progress line per file


@pytest.mark.parametrize(
    "args",
    [
        ("grade", "missing-folder", "-a", "day096-conv2d"),
        ("grade", ".", "-a", "no-such-assignment"),
        ("grade", ".", "-a", "day096-conv2d", "--student-pattern", "(unclosed"),
        ("grade", ".", "-a", "day096-conv2d", "--jobs", "0"),
    ],
)
def test_cli_usage_errors_exit_3(args, tmp_path: Path) -> None:
    result = subprocess.run(
        [*GRADER, *args, "--out", str(tmp_path / "g.csv")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "g.csv").exists()


# --------------------------------------------------------------------------- bookkeeping


def _fake_grade(path: Path, spec, **_kwargs) -> Report:
    if "crash" in path.name:
        raise RuntimeError("grader bug")
    return Report(status="passed", assignment=spec.id, score=30, max_score=30,
                  file_sha256=file_sha256(path))  # fmt: skip


def test_an_unexpected_exception_is_recorded_and_retried(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("ann.keras", "crash.h5", "=cmd.keras", ".hidden.keras"):
        (folder / name).write_bytes(b"x")
    spec = shipped_spec("day096-conv2d")
    out = tmp_path / "g.csv"
    summary = grade_directory(folder, spec, out, grade=_fake_grade, jobs=3)

    rows = read_csv(out)
    assert set(rows) == {"ann", "crash", "'=cmd"}  # no formula cell; hidden file ignored
    assert rows["crash"]["status"] == "error" and "grader bug" in rows["crash"]["reason"]
    assert summary.counts == {"passed": 2, "error": 1}
    assert "1 errors" in summary.line()
    # Errors are not final verdicts: the next run tries that file again.
    calls = []
    grade_directory(folder, spec, out, grade=lambda p, s, **k: calls.append(p.name) or
                    _fake_grade(p, s))  # fmt: skip
    assert calls == ["crash.h5"]


@pytest.mark.parametrize("error", [SandboxUnavailable("no bwrap"), ConfigurationError("no data")])
def test_operator_errors_stop_the_batch(tmp_path: Path, error: Exception) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "ann.keras").write_bytes(b"x")

    def broken(*_args, **_kwargs):
        raise error

    with pytest.raises(type(error)):
        grade_directory(folder, shipped_spec("day096-conv2d"), tmp_path / "g.csv", grade=broken)
    assert not (tmp_path / "g.csv").exists()


def test_student_names_from_the_pattern(tmp_path: Path) -> None:
    for name in ("alice_v1.keras", "alice_v2.keras", "bob.h5", "weird name!.keras", "x.txt"):
        (tmp_path / name).write_bytes(b"x")
    pattern = compile_student_pattern(r"^(?P<student>[a-z]+)_")
    subs, warnings = collect_submissions(tmp_path, pattern)
    got = {s.path.name: (s.student, s.report_name) for s in subs}
    assert got == {
        "alice_v1.keras": ("alice", "alice__alice_v1.keras.json"),
        "alice_v2.keras": ("alice", "alice__alice_v2.keras.json"),
        "bob.h5": ("bob", "bob.json"),  # no match: graded under its stem, with a warning
        "weird name!.keras": ("weird name!", "weird_name_.json"),
    }
    text = " | ".join(warnings)
    assert "bob.h5" in text and "x.txt" in text and "several files for: alice" in text
    with pytest.raises(ConfigurationError):
        compile_student_pattern("(")


# --------------------------------------------------------------------------- integrity


def _named_cnn(prefix: str, seed: int):
    """A small CIFAR-10 CNN whose layer names start with ``prefix``."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu", name=f"{prefix}conv"),
            keras.layers.SeparableConv2D(16, 3, activation="relu", name=f"{prefix}sep"),
            keras.layers.GlobalAveragePooling2D(name=f"{prefix}pool"),
            keras.layers.Dense(10, activation="softmax", name=f"{prefix}dense"),
        ]
    )


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A class's folder: alice's work and her own re-upload, bob's copy of it (renamed
    layers, saved as .h5), carol's lightly perturbed copy, dave's own model, and
    mallory's lookup table of the (small, synthetic) test set; and that test set."""

    root = tmp_path_factory.mktemp("class")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 200).astype(np.uint8)
    data = root / "test.npz"
    np.savez(data, x=images, y=labels)
    folder = root / "subs"
    folder.mkdir()

    original = _named_cnn("a_", 1)
    original.save(folder / "alice_v1.keras")
    (folder / "alice_v2.keras").write_bytes((folder / "alice_v1.keras").read_bytes())
    copy = _named_cnn("b_", 2)
    copy.set_weights(original.get_weights())
    copy.save(folder / "bob_final.h5")
    perturbed = _named_cnn("c_", 3)
    perturbed.set_weights(
        [w + rng.normal(0, 0.01 * (w.std() or 1), w.shape) for w in original.get_weights()]
    )
    perturbed.save(folder / "carol_final.keras")
    _named_cnn("d_", 4).save(folder / "dave_final.keras")

    memoriser(images, labels).save(folder / "mallory_final.keras")
    return folder, data


@needs_sandbox
def test_cli_grade_flags_memorising_models_and_pairs_copies(
    class_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, data = class_folder
    out = tmp_path / "grades.csv"
    pattern = "^(?P<student>[a-z]+)_"
    result = subprocess.run(
        [*GRADER, "grade", str(folder), "-a", "day097-cifar10", "--out", str(out),
         "--data", str(data), "--student-pattern", pattern, "--jobs", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert all(row["status"] in ("passed", "failed") for row in rows.values()), rows

    # The lookup table: perfect on the test images, lost once they are mirrored or shifted.
    mallory = rows["mallory_final.keras"]
    assert mallory["integrity_flag"] == "yes"
    assert float(mallory["probe_accuracy"]) == 1.0
    assert mallory["probe_variant"] in ("flip", "shift")
    assert float(mallory["variant_accuracy"]) < 0.5
    others = [row for name, row in rows.items() if name != "mallory_final.keras"]
    assert {row["integrity_flag"] for row in others} == {"no"}
    assert all(row["probe_accuracy"] and row["variant_accuracy"] for row in others)
    assert "1 flagged by the integrity probe, 5 possible copies" in result.stdout
    assert "Flagged: mallory (mallory_final.keras): On the first 200 test images" in result.stdout

    # Copies: bob's renamed .h5 and carol's noisy copy, of both of alice's identical files;
    # never alice with herself, never dave (his own model) or mallory.
    copies = [line for line in result.stdout.splitlines() if line.startswith("Possible copy")]
    assert len(copies) == 5, result.stdout
    assert sum("identical weights, 100.0 %" in line for line in copies) == 2
    assert sum("similar weights" in line for line in copies) == 3
    assert not any("alice_v1" in line and "alice_v2" in line for line in copies)
    bob = rows["bob_final.h5"]["possible_copies"]
    assert "alice (alice_v1.keras): identical weights, 1.00" in bob
    assert "alice (alice_v2.keras): identical weights, 1.00" in bob
    assert "carol (carol_final.keras): similar weights" in bob
    assert "alice (alice_v2.keras)" not in rows["alice_v1.keras"]["possible_copies"]
    assert rows["dave_final.keras"]["possible_copies"] == ""
    assert rows["mallory_final.keras"]["possible_copies"] == ""

    # A re-run grades nothing (no sandbox) and still pairs: the reports keep the prints.
    spec = find_spec("day097-cifar10", ASSIGNMENTS)
    again = grade_directory(folder, spec, out, data=data, student_pattern=pattern)
    assert again.skipped == len(rows) and len(again.pairs) == 5
    assert [r.file for r in again.flagged] == ["mallory_final.keras"]
