"""The instructor's second held-out set (``evaluation.holdout``): loaded by the real
code from an ``.npz`` made here, predicted in the same sandbox run as the test images,
and scored on the trusted side. A model that memorised the (public) test images scores
far lower on images it has not seen, and is flagged; the honest fixture is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from models import memoriser as lookup_model
from testutil import first_test_images, real_cifar10, shipped_spec

from grader import data
from grader.errors import ConfigurationError
from grader.pipeline import grade_file
from grader.report import Report
from grader.spec import AssignmentSpec, parse_spec

FIXTURE = Path(__file__).parent / "fixtures" / "day097_cifar10.keras"
MEMORISED = 300  # the test images the memorising model holds in its weights


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> tuple[data.TestSet, Path]:
    """The first 300 real test images as the test set, and 500 later ones as an .npz
    held-out set (images no model here was built from)."""
    folder = tmp_path_factory.mktemp("holdout")
    test = first_test_images(folder, MEMORISED)
    full = data.find_test_set(real_cifar10(), None)
    held_out = folder / "heldout.npz"
    np.savez(held_out, x=full.images()[5000:5500], y=full.labels[5000:5500].astype(np.int64))
    return test, held_out


@pytest.fixture(scope="module")
def memoriser(tmp_path_factory: pytest.TempPathFactory, cifar: tuple) -> Path:
    """A nearest-neighbour lookup of the test images in Dense weights: 100 % on them."""
    test, _ = cifar
    path = tmp_path_factory.mktemp("memo") / "memorised.keras"
    lookup_model(test.images(), test.labels).save(path)
    return path


def _spec(holdout: object) -> AssignmentSpec:
    spec = shipped_spec("day097-cifar10")
    block = spec.evaluation.model_copy(update={"holdout": None})
    data_ = spec.model_dump()
    data_["evaluation"] = {**block.model_dump(), "holdout": holdout}
    return AssignmentSpec.model_validate(data_)


def _grade(model: Path, cifar: tuple, holdout: object) -> Report:
    test, _ = cifar
    return grade_file(model, _spec(holdout), test_set=test)


def test_memorised_model_is_flagged_by_the_held_out_set(memoriser: Path, cifar: tuple) -> None:
    _, held_out = cifar
    report = _grade(memoriser, cifar, {"path": str(held_out), "max_gap": 0.3})
    assert report.metrics is not None and report.metrics.accuracy == 1.0
    verdict = report.integrity
    assert verdict is not None and verdict.holdout is not None
    h = verdict.holdout
    assert h.images == 500 and h.problem == ""
    assert h.test_accuracy == 1.0 and h.accuracy is not None and h.accuracy < 0.4
    assert h.flagged and verdict.flagged
    assert "held-out set" in verdict.message and "500 images" in verdict.message


def test_honest_model_is_not_flagged_and_its_accuracy_is_not_changed(cifar: tuple) -> None:
    _, held_out = cifar
    plain = grade_file(FIXTURE, _spec(None), test_set=cifar[0])
    report = _grade(FIXTURE, cifar, str(held_out))  # the short form: a bare path
    assert report.metrics == plain.metrics  # the extra images never reach the test figures
    h = report.integrity.holdout
    assert h is not None and h.accuracy is not None and h.accuracy > 0.6
    assert abs(h.gap) < 0.2 and not h.flagged
    assert not report.integrity.flagged and report.status == "passed"


def test_a_missing_set_is_reported_and_the_test_set_still_graded(cifar: tuple) -> None:
    report = _grade(FIXTURE, cifar, "no/such/cifar10.1.npz")
    assert report.status == "passed"
    h = report.integrity.holdout
    assert h is not None and h.accuracy is None and not h.flagged
    assert "no/such/cifar10.1.npz" in h.problem


@pytest.mark.parametrize("broken", ["five_classes", "nan"])
def test_unusable_outputs_are_diagnosed_not_refused_with_a_held_out_set(
    cifar: tuple, tmp_path: Path, broken: str
) -> None:
    import keras

    width = 5 if broken == "five_classes" else 10
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(width)]
    )
    if broken == "nan":
        kernel, bias = model.layers[-1].get_weights()
        model.layers[-1].set_weights([kernel, np.full_like(bias, np.nan)])
    path = tmp_path / f"{broken}.keras"
    model.save(path)
    report = _grade(path, cifar, str(cifar[1]))
    assert report.status == "failed", report.reason
    codes = {d.code for d in report.diagnosis}
    assert codes & {"wrong_class_count", "non_finite_outputs"}, codes
    h = report.integrity.holdout if report.integrity else None
    assert h is None or (h.accuracy is None and not h.flagged)


def test_relative_paths_are_read_from_the_assignments_folder(tmp_path: Path) -> None:
    from grader.holdout import resolve
    from grader.spec import Holdout

    assert resolve(Holdout(path="sets/c101.npz"), tmp_path) == tmp_path / "sets" / "c101.npz"
    assert resolve(Holdout(path="/abs/c101.npz"), tmp_path) == Path("/abs/c101.npz")


@pytest.mark.parametrize(
    ("x", "y", "why"),
    [
        (np.zeros((4, 28, 28, 3), np.uint8), np.zeros(4, np.int64), "shape"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, np.int64), "shape"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 10]), "labels"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, -1, 2, 3]), "labels"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.array([0.5, 1, 2, 3]), "labels"),
    ],
)
def test_a_malformed_set_is_refused_with_the_reason(
    tmp_path: Path, x: np.ndarray, y: np.ndarray, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "set.npz"
    np.savez(path, x=x, y=y)
    with pytest.raises(ConfigurationError, match=why):
        data.load_holdout(path)


def test_a_set_without_y_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "set.npz"
    np.savez(path, x=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigurationError, match="could not be read"):
        data.load_holdout(path)


@given(gap=st.floats(min_value=-1, max_value=2) | st.sampled_from([float("nan"), float("inf")]))
def test_spec_accepts_only_a_gap_between_zero_and_one(gap: float) -> None:
    text = (
        "id: x\ntitle: X\ninput_shape: [32, 32, 3]\n"
        f"evaluation: {{min_accuracy: 0.5, holdout: {{path: c.npz, max_gap: {gap!r}}}}}\n"
    )
    if 0 < gap <= 1:
        assert parse_spec(text).evaluation.holdout.max_gap == gap
    else:
        with pytest.raises(ConfigurationError, match="max_gap"):
            parse_spec(text)


def test_only_the_instructor_sees_the_held_out_set() -> None:
    from grader.web.access import visible_report

    holdout = {"source": "c101.npz", "images": 2000, "accuracy": 0.2, "flagged": True}
    report = {"integrity": {"flagged": True, "action": "flag", "holdout": holdout}}
    assert visible_report(report, instructor=False)["integrity"] is None
    assert visible_report(report, instructor=True)["integrity"]["holdout"] == holdout


def test_the_held_out_flag_stands_without_probes() -> None:
    """A model whose probe outputs were dropped (NaN on unseen images, say) must not
    dodge the held-out set's flag."""
    from grader.integrity import judge
    from grader.report import HoldoutResult
    from grader.spec import Integrity

    gap = HoldoutResult(
        source="c101.npz", images=2000, accuracy=0.1, test_accuracy=1.0, gap=0.9, max_gap=0.2,
        flagged=True,
    )  # fmt: skip
    verdict = judge(Integrity(action="zero"), None, gap)
    assert verdict is not None and verdict.flagged and verdict.holdout == gap
    assert verdict.drop is None and "2,000 images of the held-out set" in verdict.message
    assert judge(Integrity(), None, None) is None


def test_a_truncated_or_float_set_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 32, 32, 3), np.uint8), y=np.arange(4))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ConfigurationError, match="could not be read"):
        data.load_holdout(truncated)
    floats = tmp_path / "floats.npz"
    np.savez(floats, x=np.zeros((4, 32, 32, 3), np.float32), y=np.arange(4))
    with pytest.raises(ConfigurationError, match="uint8"):
        data.load_holdout(floats)


def test_a_stored_figure_is_judged_again_by_the_drafts_rule(tmp_path: Path) -> None:
    from grader.holdout import rejudge
    from grader.report import HoldoutResult
    from grader.spec import Holdout

    where = str(tmp_path / "c101.npz")
    stored = HoldoutResult(
        source=where, images=10, accuracy=0.5, test_accuracy=0.8, gap=0.3, max_gap=0.2,
        flagged=True,
    )  # fmt: skip
    looser = rejudge(stored, Holdout(path="c101.npz", max_gap=0.4), tmp_path)
    assert looser is not None and not looser.flagged and looser.max_gap == 0.4
    assert rejudge(stored, Holdout(path="other.npz"), tmp_path) is None  # another set
    assert rejudge(stored, None, tmp_path) is None  # the draft has no held-out set
