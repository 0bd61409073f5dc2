"""The grading pipeline: every entry point (CLI, web, queue) grades through here.

Order matters for safety and speed: the file is inspected as data first (no
TensorFlow, well under a second), so hostile and malformed files are refused
before anything loads them; only then is the model loaded and run, inside the
sandbox, and the predictions it returns are scored here, where the labels are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from grader import __version__
from grader.checks import architecture_checks, fmt_shape
from grader.data import TestSet, find_test_set
from grader.errors import ConfigurationError, NotGradable
from grader.inspection.architecture import Architecture
from grader.inspection.static import Inspection, inspect_model
from grader.metrics import score_predictions
from grader.report import Check, LayerInfo, ModelInfo, Report
from grader.sandbox import EvaluationResult, SandboxLimits, evaluate_model
from grader.scoring import accuracy_fraction, score
from grader.settings import Settings, get_settings
from grader.spec import AssignmentSpec

PhaseCallback = Callable[[str], None]
# Same signature as grader.sandbox.evaluate_model; a warm worker passes its own.
Evaluator = Callable[..., EvaluationResult]


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 4)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_if_regular(path: Path, max_bytes: int) -> str | None:
    """The file's identity, also for refused files (batch re-runs key on it);
    never through a link, never for a folder or an oversized file."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        return None
    return file_sha256(path)


def inspect_file(model_path: Path, spec: AssignmentSpec, settings: Settings) -> Inspection:
    """Static, TensorFlow-free checks: format, allow-list, caps, and the assignment's input."""
    inspection = inspect_model(model_path, settings)
    arch = inspection.architecture
    expected = [None, *spec.input_shape]
    actual = list(arch.input_shape)
    fits = len(actual) == len(expected) and all(
        a is None or e is None or a == e for a, e in zip(actual, expected, strict=True)
    )
    if not fits:
        raise NotGradable(
            f"Your model's input is {fmt_shape(actual)}, but this assignment feeds images of "
            f"shape {fmt_shape(expected)}. Set keras.Input(shape={tuple(spec.input_shape)})."
        )
    return inspection


def require_loader(loader: str) -> None:
    """A Keras 2 file needs tf-keras installed; without it that is the operator's problem."""
    if loader == "tf_keras" and importlib.util.find_spec("tf_keras") is None:
        raise ConfigurationError(
            "This file was written by Keras 2 (tf.keras), which this installation cannot load: "
            "install it with pip install --no-deps 'tf-keras~=2.21.0'."
        )


def batch_size_for(arch: Architecture, settings: Settings) -> int:
    """Images per predict call: the configured batch, smaller when the model's largest
    tensor would not fit a quarter of the sandbox's memory (a few are live at once)."""
    per_image = max(arch.resources.peak_activation_bytes, 1) * 4
    fits = settings.sandbox_memory_bytes // 4 // per_image
    return max(1, min(settings.predict_batch_size, fits))


def model_info(arch: Architecture, fmt: str | None) -> ModelInfo:
    return ModelInfo(
        format=fmt,
        total_params=arch.total_params,
        trainable_params=arch.trainable_params,
        input_shape=list(arch.input_shape),
        output_shape=list(arch.output_shape),
        layers=[
            LayerInfo(
                name=layer.name,
                type=layer.type,
                path=layer.path,
                output_shape=list(layer.output_shape),
                params=layer.params,
                trainable_params=layer.trainable_params,
                attributes=layer.attributes,
            )
            for layer in arch.layers
        ],
    )


def _cross_check(arch: Architecture, layers: list[dict], total: int) -> None:
    """What Keras built must be what the file declared, layer by layer; a difference
    means the file was tampered with (or the inference is wrong: never graded blind)."""
    if total != arch.total_params:
        raise NotGradable(
            f"The model Keras built has {total:,} parameters, but its stored configuration "
            f"declares {arch.total_params:,}. The file is inconsistent and cannot be graded."
        )
    built = [(x["type"], x.get("params")) for x in layers if x["type"] != "InputLayer"]
    declared = [(x.type, x.params) for x in arch.layers]
    if built != declared:
        raise NotGradable(
            "The layers Keras built differ from the file's stored configuration; the file is "
            "inconsistent and cannot be graded."
        )


def grade_file(
    model_path: Path,
    spec: AssignmentSpec,
    *,
    settings: Settings | None = None,
    trust: bool = False,
    test_set: TestSet | None = None,
    on_phase: PhaseCallback | None = None,
    evaluator: Evaluator = evaluate_model,
    gpu: int | None = None,
) -> Report:
    """Inspect, evaluate in a sandbox and score one model file.

    Never raises for a bad file: the verdict is in ``Report.status``. Raises
    ConfigurationError (no test set) and SandboxUnavailable (no isolation and
    not trusted), which are the operator's problems, not the student's.
    ``on_phase`` is called with "inspecting", "evaluating", "scoring".
    ``evaluator`` runs the model in isolation (default: a fresh sandbox);
    ``gpu`` is the index of the GPU it may use (None: CPU only).
    """
    settings = settings or get_settings()
    notify = on_phase or (lambda _phase: None)
    clock = _Clock()
    started = time.perf_counter()
    report = Report(status="failed", assignment=spec.id, grader_version=__version__)
    try:
        notify("inspecting")
        with clock.phase("inspect"):
            report.file_sha256 = _sha256_if_regular(model_path, settings.max_upload_bytes)
            inspection = inspect_file(model_path, spec, settings)
        arch = inspection.architecture
        report.model = model_info(arch, inspection.format)
        checks = architecture_checks(spec, arch)

        evaluation = spec.evaluation
        if evaluation is not None and test_set is None:
            test_set = find_test_set(None, settings.cifar10)
        notify("evaluating")
        require_loader(inspection.loader)
        limits = SandboxLimits.from_settings(settings)
        if evaluation is not None:
            limits = dataclasses.replace(limits, wall_seconds=evaluation.time_limit_seconds)
        result = evaluator(
            model_path,
            test_set.images_path if evaluation is not None and test_set is not None else None,
            scale=evaluation.preprocessing.scale if evaluation else 1.0,
            offset=evaluation.preprocessing.offset if evaluation else 0.0,
            limits=limits,
            trust=trust,
            gpu=gpu,
            batch_size=batch_size_for(arch, settings),
            loader=inspection.loader,
        )
        clock.timings.update({k: round(v, 4) for k, v in result.timings.items()})
        report.device = result.device
        _cross_check(arch, result.layers, result.total_params)

        accuracy_credit = None
        if evaluation is not None and test_set is not None:
            notify("scoring")
            with clock.phase("score"):
                assert result.predictions is not None
                report.metrics = score_predictions(result.predictions, test_set.labels)
            accuracy = report.metrics.accuracy
            passed = accuracy >= evaluation.min_accuracy
            checks.append(
                Check(
                    name="CIFAR-10 test accuracy",
                    group="accuracy",
                    passed=passed,
                    expected=f"at least {evaluation.min_accuracy:.2%}",
                    actual=f"{accuracy:.2%}",
                    message=""
                    if passed
                    else f"Accuracy {accuracy:.2%} is below the minimum of "
                    f"{evaluation.min_accuracy:.2%} on {report.metrics.num_images:,} test images.",
                )
            )
            accuracy_credit = accuracy_fraction(accuracy, evaluation, spec.rubric)
        report.checks = checks
        report.score, report.max_score, report.score_breakdown = score(
            checks, spec.rubric, accuracy_credit
        )
        report.status = "passed" if all(c.passed for c in checks) else "failed"
    except NotGradable as exc:
        report = refusal_report(spec, exc.reason, file_sha256=report.file_sha256,
                                model=report.model, device=report.device)  # fmt: skip
    report.timings = {**clock.timings, "total": round(time.perf_counter() - started, 4)}
    return report


def refusal_report(
    spec: AssignmentSpec,
    reason: str,
    *,
    file_sha256: str | None = None,
    model: ModelInfo | None = None,
    device: str | None = None,
    timings: dict[str, float] | None = None,
) -> Report:
    """The "not gradable" report: no checks, no points, the reason in plain words."""
    rubric = spec.rubric
    maximum = rubric.architecture + rubric.parameters + (rubric.accuracy if spec.evaluation else 0)
    return Report(
        status="not_gradable",
        reason=reason,
        assignment=spec.id,
        grader_version=__version__,
        score=0.0,
        max_score=float(maximum),
        file_sha256=file_sha256,
        model=model or ModelInfo(),
        device=device,
        timings=timings or {},
    )
